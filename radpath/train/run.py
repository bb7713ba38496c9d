"""A training run: examples -> cross-validation -> final model -> held-out evaluation -> report.

RUN_DIR after `radpath train`:
    config.json            TrainConfig
    log.jsonl              one JSON line per epoch of every fit ("fit": "fold_1", ..., "final")
    folds/fold_k/          checkpoints and result.json (out-of-fold probabilities) per fold
    final/                 checkpoints of the model trained on every non-held-out case
    model/variables.msgpack, model/config.json   the final model (what `radpath export` converts)
    holdout.npz            held-out inputs (centre slice), labels, ages, IDs: the evaluation split
    predictions_cv.csv, predictions_holdout.csv   challenge-format predictions with probabilities
    metrics.json, model_card.md
Every stage resumes: a finished fold is not trained again, an interrupted fit restarts from its
last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from flax import serialization

from radpath.contract import predictions_csv
from radpath.contract.metrics import bootstrap_intervals, challenge_scores
from radpath.contract.model_io import CHANNELS, CLASSES, IMAGE_SHAPE, TUMOR_STATS, VIEWS
from radpath.contract.refer import MIN_THRESHOLD_CASES, NOT_ASSESSED
from radpath.preprocess import PREPROCESSING_VERSION
from radpath.preprocess.cohort import read_cohort

from .baselines import fit_baselines, predict_baselines
from .calibration import calibrate, reliability_diagram, views_to_proba
from .config import RESNET50_STAGES, TrainConfig
from .examples import Examples, build_examples, split_id
from .fusion import FUSION_KEY
from .loop import fit, init_variables, predict_logits, predict_proba
from .splits import stratified_holdout, stratified_kfold

log = logging.getLogger(__name__)


def describe_data(cohort_root: Path) -> dict:
    """What data this is, said plainly: the synthetic cohort announces itself with SYNTHETIC.md."""
    marker = cohort_root / "SYNTHETIC.md"
    if marker.is_file():
        return {
            "synthetic": True,
            "description": "SYNTHETIC cohort written by `radpath synth` (simulated anatomy and "
            "tumours, NOT patient data); scores on it say nothing about clinical accuracy",
            "synthetic_md": marker.read_text().strip(),
        }
    return {
        "synthetic": False,
        "description": f"user-provided cohort at {cohort_root} in the CPM-RadPath layout "
        "(its origin and licence are the user's responsibility)",
    }


def _site(case_id: str) -> str:
    parts = case_id.split("_")
    return parts[1] if len(parts) > 2 else "unknown"


def write_predictions(path: Path, id_column: str, ids: list[str], probs: np.ndarray) -> None:
    """The challenge CSV of `contract.predictions_csv` (tumour, slice and warning columns left empty)."""
    rows = [
        predictions_csv.PredictionRow(cid, CLASSES[int(np.argmax(p))], tuple(float(v) for v in p))
        for cid, p in zip(ids, probs)
    ]
    predictions_csv.write_predictions(path, id_column, rows)


def scores_with_ci(labels: np.ndarray, probs: np.ndarray, ids: list[str], seed: int) -> dict:
    y_true = [CLASSES[i] for i in labels]
    y_pred = [CLASSES[int(i)] for i in probs.argmax(1)]
    out = challenge_scores(y_true, y_pred)
    out["ci95"] = bootstrap_intervals(y_true, y_pred, n_boot=1000, seed=seed)
    sites: dict[str, list[bool]] = {}
    for cid, t, p in zip(ids, y_true, y_pred):
        sites.setdefault(_site(cid), []).append(t == p)
    out["accuracy_per_site"] = {s: {"n": len(v), "accuracy": float(np.mean(v))} for s, v in sorted(sites.items())}
    return out


BASELINE_FIT_KEYS = ("features", "n_train", "model")
"""What `train.baselines.fit_baselines` gives per baseline: the fit, no scores."""


def score_baselines(cohort_root: Path, train: Examples, test: Examples, seed: int, fitted: dict | None = None) -> dict:
    """{name: challenge scores with CIs on `test`, plus features and parameters} of the baselines
    (`train.baselines`) fitted on `train` only (or given as `fitted`, e.g. from a run's metrics.json)."""
    if fitted is None:
        fitted = fit_baselines(cohort_root, train.case_ids, train.labels, train.ages_days, train.tumor_stats)
    probs = predict_baselines(fitted, cohort_root, test.case_ids, test.ages_days, test.tumor_stats)
    out = {}
    for name, p in probs.items():
        scores = scores_with_ci(test.labels, p.astype(np.float32), test.case_ids, seed)
        # only the fit travels: a `fitted` entry from metrics.json also holds its own split's scores
        fit = {k: fitted[name][k] for k in BASELINE_FIT_KEYS if k in fitted[name]}
        out[name] = {**scores, **fit, "fitted_on": f"training split ({fitted[name]['n_train']} cases)"}
    return out


def calibrate_on_holdout(
    variables: dict, config: TrainConfig, held: Examples, run_dir: Path
) -> tuple[dict, np.ndarray]:
    """(calibration report, calibrated probabilities [n, 3]) of the final model on the held-out split:
    the temperature and refer threshold (`train.calibration`), saved for the exporter in RUN/model, the
    reliability diagram, and the challenge scores of the answers the threshold accepts."""
    logits = predict_logits(variables, config, held)
    calib = calibrate(logits, held.labels, seed=config.seed)
    probs = views_to_proba(logits, calib["temperature"]).astype(np.float32)
    save_calibration(run_dir / "model", calib)
    reliability_diagram(views_to_proba(logits, 1.0), probs, held.labels, run_dir / "reliability.png")
    accepted = probs.max(axis=1) >= calib["refer"]["threshold"]
    if accepted.any():
        calib["refer"]["accepted_scores"] = challenge_scores(
            [CLASSES[i] for i in held.labels[accepted]], [CLASSES[int(i)] for i in probs[accepted].argmax(1)]
        )
    return calib, probs


def network_alone(variables: dict, config: TrainConfig, held: Examples) -> dict:
    """What a model pooled with the tumour-statistics reader (`train.fusion`) scores on the held-out split
    without it (uncalibrated, temperature 1): the report shows what each reader brings."""
    net = {k: v for k, v in variables.items() if k != FUSION_KEY}
    probs = predict_proba(net, replace(config, stats_fusion=0.0), held)
    scores = challenge_scores([CLASSES[i] for i in held.labels], [CLASSES[int(i)] for i in probs.argmax(1)])
    return {
        "weight": config.stats_fusion,
        "reader": "tumour_stats_and_age logistic regression (train.fusion), fitted on the training split",
        "network_alone_holdout": {k: scores[k] for k in ("f1_micro", "kappa", "balanced_accuracy", "mean")},
    }


def save_model(model_dir: Path, variables: dict, config: TrainConfig) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / "variables.msgpack.tmp"
    tmp.write_bytes(serialization.to_bytes(variables))
    tmp.replace(model_dir / "variables.msgpack")
    (model_dir / "config.json").write_text(config.to_json())
    (model_dir / "preprocessing_version").write_text(PREPROCESSING_VERSION + "\n")


def save_calibration(model_dir: Path, calib: dict) -> None:
    """model/calibration.json: the temperature and refer threshold the exporter builds in."""
    keep = {
        "temperature": calib["temperature"],
        "refer_threshold": calib["refer"]["threshold"],
        "refer_max_error": calib["refer_max_error"],
        "fitted_on": "held-out split",
        "n": calib["n"],
    }
    (model_dir / "calibration.json").write_text(json.dumps(keep, indent=2))


def load_calibration(run_dir: Path) -> dict:
    """The run's calibration (temperature 1 and a refer threshold "not assessed" when the run had no
    held-out split)."""
    path = Path(run_dir) / "model" / "calibration.json"
    if not path.is_file():
        return {
            "temperature": 1.0,
            "refer_threshold": NOT_ASSESSED,
            "refer_max_error": None,
            "fitted_on": None,
            "n": 0,
        }
    return json.loads(path.read_text())


def load_model(run_dir: Path) -> tuple[dict, TrainConfig]:
    """(variables, config) of a finished run's final model."""
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "variables.msgpack").is_file():
        raise FileNotFoundError(f"{run_dir}: no trained model (model/variables.msgpack); run `radpath train` first")
    config = TrainConfig.from_file(model_dir / "config.json")
    template = init_variables(config)
    variables = serialization.from_bytes(template, (model_dir / "variables.msgpack").read_bytes())
    kernel = np.shape(variables["params"]["conv_init"]["kernel"])
    if kernel != np.shape(template["params"]["conv_init"]["kernel"]):
        raise ValueError(
            f"{run_dir}: this model reads {kernel[2]} input channels, this version of radpath builds "
            f"{IMAGE_SHAPE[-1]} ({' + '.join(VIEWS)} views of {len(CHANNELS)} sequences, preprocessing version "
            f"{PREPROCESSING_VERSION}): it was trained by an older version; train it again"
        )
    return variables, config


def _fit_logged(
    examples: Examples,
    config: TrainConfig,
    work: Path,
    name: str,
    run_dir: Path,
    devices: int | None,
    progress: bool,
    stop_after: int | None,
):
    work.mkdir(parents=True, exist_ok=True)
    log_tmp = work / "log.jsonl"
    result = fit(examples, config, work / "checkpoints", devices, progress, log_tmp, stop_after)
    if result.completed and log_tmp.exists():
        with open(run_dir / "log.jsonl", "a") as f:
            for line in log_tmp.read_text().splitlines():
                f.write(json.dumps({"fit": name, **json.loads(line)}) + "\n")
        log_tmp.unlink()
    return result


def run_training(
    cohort: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    folds: int = 5,
    holdout: float = 0.2,
    devices: int | None = None,
    cache_dir: str | Path | None = None,
    labels: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train, cross-validate and evaluate; returns the metrics written to RUN_DIR/metrics.json.

    `stop_after` (epochs) interrupts every fit after that many epochs, for resumable time-boxed runs.
    """
    t_start = time.perf_counter()
    cohort_root, run_dir = Path(cohort), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if saved.exists() and TrainConfig.from_file(saved) != config:
        raise ValueError(f"{run_dir} holds a run with other settings ({saved}); use a new --out folder")
    saved.write_text(config.to_json())
    co = read_cohort(cohort_root, labels)
    entries = co.labelled()
    unlabelled = [e.case_id for e in co.entries if e.label is None]
    if len(entries) < 6:
        raise ValueError(f"{cohort_root}: only {len(entries)} labelled cases; training needs more")
    ex = build_examples(
        entries,
        cache_dir or run_dir / "cache",
        offsets=tuple(sorted(config.slice_offsets)),
        progress=progress,
        with_seg=config.seg_weight > 0,
    )
    failed = ex.failed + list(co.problems) + [(i, "no class in the labels CSV") for i in unlabelled]
    train_idx, held_idx = stratified_holdout(ex.labels, holdout, config.seed)
    pool, held = ex.subset(train_idx), ex.subset(held_idx)
    counts = {c: int((ex.labels == i).sum()) for i, c in enumerate(CLASSES)}
    report: dict = {
        "data": {
            "cohort": str(cohort_root),
            **describe_data(cohort_root),
            "cases_used": len(ex.labels),
            "class_counts": counts,
            "cases_not_used": [{"case_id": i, "reason": r} for i, r in failed],
        },
        "preprocessing_version": PREPROCESSING_VERSION,
        "config": asdict(config),
        "cross_validation": None,
        "holdout": None,
    }

    if folds:
        oof = np.zeros((len(pool.labels), len(CLASSES)), np.float32)
        per_fold = []
        for k, (tr, va) in enumerate(stratified_kfold(pool.labels, folds, config.seed), start=1):
            work = run_dir / "folds" / f"fold_{k}"
            done = work / "result.json"
            if done.exists():
                probs = np.array(json.loads(done.read_text())["probabilities"], np.float32)
            else:
                if progress:
                    print(f"cross-validation fold {k}/{folds}: {len(tr)} train, {len(va)} validation cases")
                result = _fit_logged(pool.subset(tr), config, work, f"fold_{k}", run_dir, devices, progress, stop_after)
                if not result.completed:
                    return {"interrupted": True}
                probs = predict_proba(result.variables, config, pool.subset(va))
                done.write_text(
                    json.dumps({"validation_ids": [pool.case_ids[i] for i in va], "probabilities": probs.tolist()})
                )
            oof[va] = probs
            per_fold.append(
                challenge_scores([CLASSES[i] for i in pool.labels[va]], [CLASSES[int(i)] for i in probs.argmax(1)])[
                    "mean"
                ]
            )
        cv = scores_with_ci(pool.labels, oof, pool.case_ids, config.seed)
        cv.update({"folds": folds, "mean_per_fold": per_fold, "tta": config.tta})
        report["cross_validation"] = cv
        write_predictions(run_dir / "predictions_cv.csv", co.id_column, pool.case_ids, oof)

    if progress:
        print(f"final model: {len(pool.labels)} training cases, {len(held.labels)} held out")
    result = _fit_logged(pool, config, run_dir / "final", "final", run_dir, devices, progress, stop_after)
    if not result.completed:
        return {"interrupted": True}
    save_model(run_dir / "model", result.variables, config)
    if len(held.labels):
        calib, probs = calibrate_on_holdout(result.variables, config, held, run_dir)
        report["calibration"] = calib
        ho = scores_with_ci(held.labels, probs, held.case_ids, config.seed)
        ho.update(
            {"split_id": split_id(held.case_ids), "tta": config.tta, "calibrated": True, "age_used": config.use_age}
        )
        report["holdout"] = ho
        report["baselines"] = score_baselines(cohort_root, pool, held, config.seed)
        if config.stats_fusion > 0:
            report["fusion"] = network_alone(result.variables, config, held)
        write_predictions(run_dir / "predictions_holdout.csv", co.id_column, held.case_ids, probs)
        np.savez_compressed(
            run_dir / "holdout.npz",
            images=held.images[:, held.centre],
            labels=held.labels,
            ages_days=held.ages_days,
            case_ids=np.array(held.case_ids),
            **({} if held.tumor_stats is None else {"tumor_stats": held.tumor_stats}),
        )
    report["training_history_final"] = result.history
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    (run_dir / "model_card.md").write_text(model_card(report))
    return report


def _fmt(scores: dict | None) -> str:
    if not scores:
        return "not run"
    ci = scores["ci95"]
    rows = [
        f"| {name} | {scores[key]:.3f} | {ci[key][0]:.3f} – {ci[key][1]:.3f} |"
        for key, name in (
            ("f1_micro", "F1 micro"),
            ("kappa", "Cohen's kappa"),
            ("balanced_accuracy", "balanced accuracy"),
            ("mean", "mean (challenge score)"),
        )
    ]
    return "\n".join(
        [
            "| metric | value | 95 % bootstrap CI |",
            "|---|---|---|",
            *rows,
            "",
            f"Cases: {scores['n']}; per-class recall: "
            + ", ".join(f"{c} {'-' if r is None else f'{r:.2f}'}" for c, r in scores["per_class_recall"].items()),
        ]
    )


BASELINE_NAMES = {
    "age_only": "age only (logistic regression)",
    "signs_and_age": "generator's drawn signs + age (logistic regression)",
    "tumour_stats_and_age": "the found tumour's 3-D statistics + age (logistic regression)",
}


def _baselines(model_scores: dict | None, baselines: dict | None, fusion: dict | None = None) -> str:
    """The model beside simple baselines fitted on the same training split and scored on the same
    cases: how much the image adds."""
    if not model_scores:
        return ""
    if not baselines:
        return "\nBaselines: not computed (no held-out split or no ages).\n"

    def row(name: str, s: dict) -> str:
        ci = s["ci95"]["mean"]
        cells = " | ".join(f"{s[k]:.3f}" for k in ("f1_micro", "kappa", "balanced_accuracy"))
        return f"| {name} | {cells} | **{s['mean']:.3f}** ({ci[0]:.2f} – {ci[1]:.2f}) |"

    lines = [
        "",
        "Beside baselines fitted on the same training cases and scored on the same cases:",
        "",
        "| predictor | F1 micro | kappa | balanced accuracy | mean (95 % CI) |",
        "|---|---|---|---|---|",
        row(
            "this model (images"
            + (" + age" if model_scores.get("age_used") else "")
            + (" + tumour statistics" if fusion else "")
            + ")",
            model_scores,
        ),
        *(row(BASELINE_NAMES.get(k, k), v) for k, v in baselines.items()),
    ]
    if fusion:
        alone = fusion["network_alone_holdout"]
        lines += [
            "",
            f"The network alone, before its probabilities are pooled with the tumour-statistics reader "
            f"(weight {fusion['weight']:g}): mean **{alone['mean']:.3f}** (F1 micro {alone['f1_micro']:.3f}, "
            f"kappa {alone['kappa']:.3f}, balanced accuracy {alone['balanced_accuracy']:.3f}; uncalibrated).",
        ]
    if "signs_and_age" not in baselines:
        lines += ["", "(`signs_and_age` needs the synthetic generator's `Segmentation/appearance.csv`.)"]
    return "\n".join(lines) + "\n"


def _calibration(report: dict) -> str:
    """Model-card section: temperature scaling and the refer flag (see `train.calibration`)."""
    c = report.get("calibration")
    if not c:
        return (
            "\n### Calibration\nNo held-out split: probabilities are uncalibrated softmax outputs and the "
            "refer threshold was **not assessed**: every answer of this model is referred.\n"
        )
    r, x = c["refer"], c.get("cross_fitted") or {}
    acc = r.get("accepted_scores") or {}
    err = "-" if r["accepted_error_rate"] is None else f"{r['accepted_error_rate']:.3f}"
    lines = [
        "",
        "### Calibration and the refer flag (held-out split)",
        f"Temperature T = {c['temperature']:.3f}, fitted on the held-out split (n = {c['n']}) and built into the "
        "exported model: served probabilities are softmax(logits / T), averaged over the test-time views."
        + (
            f" T is at least {c['min_temperature']:g}: the split alone asked for {c['temperature_free']:.3f}, "
            "which would make the model more confident than it was trained to be, and new cases are harder "
            "than a small held-out split (`train.calibration`)."
            if "temperature_free" in c and c["temperature_free"] < c["temperature"] - 1e-6
            else ""
        ),
        "",
        "| | ECE (15 bins) | NLL |",
        "|---|---|---|",
        f"| before (T = 1) | {c['ece_before']:.3f} | {c['nll_before']:.3f} |",
        f"| after (fitted and measured on the same split) | {c['ece_after']:.3f} | {c['nll_after']:.3f} |",
    ]
    if x:
        lines.append(
            f"| after, cross-fitted (fit on one half, measured on the other) | {x['ece']:.3f} | {x['nll']:.3f} |"
        )
    if "ece_noise_floor" in c:
        lines += [
            "",
            f"On {c['n']} cases a perfectly calibrated model with these probabilities would still show an ECE of "
            f"about {c['ece_noise_floor']:.3f} (labels drawn from its own probabilities): differences below that "
            "are sampling noise.",
        ]
    if r.get("assessed", True):
        refer = (
            f"Refer threshold {r['threshold']:.3f} (top-class probability), chosen so that accepted cases err at "
            f"most {100 * c['refer_max_error']:.0f} %: coverage {r['coverage']:.2f} ({r['accepted']} accepted, "
            f"{r['referred']} referred), accepted error rate {err}"
            + (f", accepted cases' challenge mean {acc['mean']:.3f}" if acc else "")
            + "."
        )
    else:
        refer = (
            f"Refer threshold: **not assessed** (a threshold is fitted only on at least {MIN_THRESHOLD_CASES} "
            f"held-out cases; this split has {c['n']}): every answer of this model is referred."
        )
    lines += ["", f"Reliability diagram: `reliability.png`. {refer}"]
    if x:
        xe = "-" if x["accepted_error_rate"] is None else f"{x['accepted_error_rate']:.3f}"
        lines.append(
            f"Cross-fitted: coverage {x['coverage']:.2f}, accepted error rate {xe} (what to expect on new cases)."
        )
    return "\n".join(lines) + "\n"


def _external(report: dict) -> str:
    """Model-card section for the cohorts of `train.cohort_eval` (other styles, the subtle end)."""
    ext = report.get("external") or {}
    if not ext:
        return (
            "\n### Other cohorts\nNot evaluated on any cohort drawn differently from the training data: "
            "how it generalises is unknown.\n"
        )
    parts = [
        "\n### Other cohorts (drawn differently from the training data)",
        "In-style numbers above come from the same source as the training cases; these say how the "
        "model holds on data it was not drawn like.",
    ]
    for name, scores in ext.items():
        style = f" (generator style `{scores['style']}`)" if scores.get("style") else ""
        parts += [
            "",
            f"#### {name}{style}",
            f"{scores['data']}",
            "",
            _fmt(scores),
            _baselines(scores, scores.get("baselines")),
        ]
        if "ece" in scores:
            parts.append(
                "Calibration on these cases (the temperature was fitted on the held-out split): "
                f"ECE {scores['ece']:.3f} (15 bins; a perfectly calibrated model would show about "
                f"{scores['ece_noise_floor']:.3f} on {scores['n']} cases)."
            )
    return "\n".join(parts) + "\n"


def _architecture(cfg: dict) -> str:
    """The model card's description of the network actually trained (stages, width, initialisation)."""
    stages = tuple(cfg["stages"])
    name = "ResNet50" if stages == RESNET50_STAGES else f"a reduced ResNet ({sum(stages)} bottleneck blocks)"
    init = (
        f"first layers initialised from `{cfg['init_weights']}` (ImageNet-style, RGB conv adapted to 8 channels), "
        "the rest from scratch"
        if cfg.get("init_weights")
        else "trained from scratch"
    )
    seg = (
        f"; an auxiliary segmentation head (stride 8, loss weight {cfg['seg_weight']}) learnt the "
        "ground-truth necrosis, oedema and enhancing masks of the training cohort in both views, to point the "
        "encoder at the tumour"
        + (
            "; the class head also reads the image's statistics inside the parts it predicts (mean and spread "
            "per sequence and view"
            + (", the share of pixels darker than the brain" if cfg.get("region_dark") else "")
            + (", its small foci dark on T2 and FLAIR" if cfg.get("region_specks") else "")
            + (
                ", where each part lies in the brain (front to back, midline, rim)"
                if cfg.get("region_location")
                else ""
            )
            + ", each part's share), so the served model runs it too"
            if cfg.get("region_pool")
            else "; the served model computes the class alone"
        )
        if cfg.get("seg_weight")
        else ""
    )
    regularised = (
        f"; dropout {cfg['feature_dropout']} on the pooled image features in training"
        if cfg.get("feature_dropout")
        else ""
    ) + ("; the age weights started from the age-only logistic regression" if cfg.get("age_prior_init") else "")
    return (
        f"Flax {name}: bottleneck blocks per stage {list(stages)}, base width {cfg['width']} "
        f"({'the standard width' if cfg['width'] == 64 else 'the standard model has 64'}); {init}{seg}{regularised},"
    )


def _volume_limit(cfg: dict) -> str:
    """What of the volume the model reads (the card's Limits)."""
    if cfg.get("stats_fusion") or cfg.get("tumor_stats"):
        return (
            "the network reads one axial slice and its neighbours; the whole volume enters only through "
            f"{len(TUMOR_STATS)} statistics of the found tumour, so a missed or wrongly found tumour misleads both."
        )
    return "one axial slice and its neighbours, not the full volume."


def model_card(report: dict) -> str:
    data, cfg = report["data"], report["config"]
    warning = (
        "**Trained and evaluated on SYNTHETIC data** (simulated MRI written by `radpath synth`). "
        "These numbers measure the pipeline, not clinical accuracy.\n\n"
        if data["synthetic"]
        else ""
    )
    cv = report["cross_validation"]
    age_note = (
        (" Age is an input." if cfg["use_age"] else " Age is not used.")
        + (
            " The tumour's 3-D statistics (`preprocess.tumor_stats`: size, site, z-scores per sequence, enhancing, "
            "mismatch and dark shares inside the whole detected tumour) are an input."
            if cfg.get("tumor_stats")
            else ""
        )
        + (
            f" The served probabilities pool the network's with a second reader's (weight {cfg['stats_fusion']:g}, "
            "a weighted geometric mean): a logistic regression on the whole found tumour's 3-D statistics "
            f"(`preprocess.tumor_stats`){' and age' if cfg['use_age'] else ''}, fitted on the training split "
            "(`train.fusion`); so the model takes those statistics as an input."
            if cfg.get("stats_fusion")
            else ""
        )
    )
    return f"""# Model card: RadPath glioma classifier (A / O / G)

{warning}## Data
- {data["description"]}
- Cohort: `{data["cohort"]}`; cases used: {data["cases_used"]}; class counts: {data["class_counts"]}
- Cases not used: {len(data["cases_not_used"])} (listed in metrics.json with the reason)
- Input: the four MRI sequences at the max-tumour axial slice (and neighbours) in two views, the
  whole brain and zoomed onto the found tumour (8 channels), preprocessing version
  {report["preprocessing_version"]}. The case ID is never a feature.{age_note}

## Model
{_architecture(cfg)} with AdamW
(lr {cfg["learning_rate"]}, warm-up {cfg["warmup_epochs"]} epochs, cosine decay, weight decay {cfg["weight_decay"]}),
label smoothing {cfg["label_smoothing"]}, {cfg["epochs"]} epochs, global batch {cfg["batch_size"]},
class-balanced sampling, on-device augmentation; test-time averaging {"on" if cfg["tta"] else "off"}.

## Evaluation (challenge metrics)
### Cross-validation ({cv["folds"] if cv else 0} folds, stratified by class, split by case)
{_fmt(cv)}

### Held-out split (never used in training)
{_fmt(report["holdout"])}
{_baselines(report["holdout"], report.get("baselines"), report.get("fusion"))}
{_calibration(report)}
{_external(report)}

## Intended use
Research and engineering demonstration of the CPM-RadPath task: decision support for a
neuro-oncology team, never a diagnosis. Histopathology and molecular testing (IDH, 1p/19q) decide.

## Limits
- MRI only (no pathology slides); {_volume_limit(cfg)}
- Trained on {"synthetic" if data["synthetic"] else "the cohort above"} data; performance on other scanners,
  protocols or populations is unknown until measured on them.
- Expects BraTS-style inputs: skull-stripped, co-registered, 1 mm, all four sequences.
- Small cohorts give wide confidence intervals; read the intervals, not the point values.
"""
