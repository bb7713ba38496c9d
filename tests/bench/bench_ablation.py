"""Ablation of the training recipe: one lever at a time, the same cohorts and splits, several seeds.

    python tests/bench/bench_ablation.py COHORT --out runs/ablation --seeds 0 1 \\
        --external heldout-style=HELDOUT_COHORT --external subtle=SUBTLE_COHORT \\
        --config configs/demo.json --lever base: --lever age:use_age=true --lever seg:seg_weight=1

Each (lever, seed) is a full `radpath train` run (the real Flax ResNet50 pipeline, no CV folds) in
OUT/<lever>-s<seed>, scored on its held-out split (which depends on the seed only, so every lever
meets the same cases) and on the external cohorts; finished runs are reused. The table gives, per
lever, the mean challenge score over seeds and a 95 % percentile-bootstrap interval that resamples
cases (a case's predictions from every seed move together), beside the `signs_and_age`, `age_only`
and `tumour_stats_and_age` baselines fitted on the same training splits; then every lever against the
first one on the same cases (`paired_diff_ci`). Synthetic data: no clinical meaning.
Run it under the shared CPU lock (`flock /tmp/radpath-cpu.lock ...`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from radpath.contract.labels import read_label_table
from radpath.contract.metrics import challenge_scores
from radpath.contract.predictions_csv import read_predictions
from radpath.train.config import TrainConfig


def pooled_ci(pairs: list[tuple[str, str, str]], n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % CI of the challenge mean over (case, truth, prediction) rows, resampling cases."""
    by_case: dict[str, list[tuple[str, str]]] = {}
    for cid, t, p in pairs:
        by_case.setdefault(cid, []).append((t, p))
    cases = list(by_case)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        rows = [r for i in rng.integers(0, len(cases), len(cases)) for r in by_case[cases[i]]]
        means.append(challenge_scores([t for t, _ in rows], [p for _, p in rows])["mean"])
    return float(np.nanpercentile(means, 2.5)), float(np.nanpercentile(means, 97.5))


def paired_diff_ci(
    a: list[tuple[str, str, str]], b: list[tuple[str, str, str]], n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(b - a, CI low, CI high): the challenge mean of b's rows minus a's over the cases both hold, with a
    95 % percentile-bootstrap interval that resamples those cases (a case's rows in a and b move together):
    the comparison of two levers on the same cases, tighter than comparing their separate intervals."""
    by_a: dict[str, list[tuple[str, str]]] = {}
    by_b: dict[str, list[tuple[str, str]]] = {}
    for cid, t, p in a:
        by_a.setdefault(cid, []).append((t, p))
    for cid, t, p in b:
        by_b.setdefault(cid, []).append((t, p))
    cases = sorted(set(by_a) & set(by_b))

    def diff(picked: list[str]) -> float:
        ra = [r for c in picked for r in by_a[c]]
        rb = [r for c in picked for r in by_b[c]]
        return (
            challenge_scores([t for t, _ in rb], [p for _, p in rb])["mean"]
            - challenge_scores([t for t, _ in ra], [p for _, p in ra])["mean"]
        )

    rng = np.random.default_rng(seed)
    diffs = [diff([cases[i] for i in rng.integers(0, len(cases), len(cases))]) for _ in range(n_boot)]
    return diff(cases), float(np.nanpercentile(diffs, 2.5)), float(np.nanpercentile(diffs, 97.5))


def rows_of(pred_csv: Path, labels: dict[str, str | None]) -> list[tuple[str, str, str]]:
    return [(r.case_id, labels[r.case_id] or "", r.label) for r in read_predictions(pred_csv).rows]


def external_ece(run: Path, ext_labels: dict[str, dict[str, str | None]]) -> float | None:
    """ECE (calibrated probabilities, `train.calibration`) over every external cohort's cases of one run,
    pooled: calibration on new cases, on many more of them than the held-out split has."""
    from radpath.contract.model_io import CLASSES
    from radpath.train.calibration import expected_calibration_error
    from radpath.train.cohort_eval import external_predictions_path

    probs, truth = [], []
    for ext, labels in ext_labels.items():
        path = external_predictions_path(run, ext)
        if not path.is_file():
            continue
        for r in read_predictions(path).rows:
            if labels.get(r.case_id) and r.probabilities:
                probs.append(list(r.probabilities))
                truth.append(CLASSES.index(str(labels[r.case_id])))
    return expected_calibration_error(np.array(probs), np.array(truth)) if probs else None


BASELINES = ("signs_and_age", "age_only", "tumour_stats_and_age")
"""`train.baselines` scored in every run (a run from before a baseline existed leaves its column empty)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cohort")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--config", help="base configuration (default: TrainConfig defaults)")
    ap.add_argument("--set", action="append", default=[], help="base setting key=value (every lever)")
    ap.add_argument("--lever", action="append", required=True, help="NAME:key=value,key=value (NAME: = the base)")
    ap.add_argument("--external", action="append", default=[], help="NAME=COHORT scored for every run")
    ap.add_argument("--devices", type=int)
    ap.add_argument("--only-summary", action="store_true")
    args = ap.parse_args()

    from radpath.train.cohort_eval import evaluate_cohort, external_predictions_path
    from radpath.train.run import run_training

    out, cohort = Path(args.out), Path(args.cohort)
    base = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    base = base.with_settings(args.set)
    externals = dict(e.split("=", 1) for e in args.external)
    labels = read_label_table(cohort / "training_data_classification_labels.csv").classes
    ext_labels = {
        n: read_label_table(Path(c) / "training_data_classification_labels.csv").classes for n, c in externals.items()
    }
    levers = [(lv.partition(":")[0], lv.partition(":")[2]) for lv in args.lever]
    for seed in args.seeds:  # seed-major: every lever's first seed is done before any second seed
        for name, settings in levers:
            run = out / f"{name}-s{seed}"
            if args.only_summary:
                continue
            if not (run / "metrics.json").is_file():
                config = base.with_settings([s for s in settings.split(",") if s]).replace(seed=seed)
                t0 = time.perf_counter()
                run_training(
                    cohort,
                    run,
                    config,
                    folds=0,
                    holdout=0.2,
                    devices=args.devices,
                    cache_dir=out / "cache",
                    progress=False,
                )
                print(f"{run.name}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
            for ext, path in externals.items():
                if ext not in (json.loads((run / "metrics.json").read_text()).get("external") or {}):
                    evaluate_cohort(run, path, ext, progress=False, cache_dir=out / "cache")

    def pooled_rows(a: str, b: str, where: str) -> tuple[list, list]:
        """Both levers' (case, truth, prediction) rows on `where` over the seeds both finished."""
        ra: list = []
        rb: list = []
        for seed in args.seeds:
            files = [
                out / f"{lv}-s{seed}" / "predictions_holdout.csv"
                if where == "holdout"
                else external_predictions_path(out / f"{lv}-s{seed}", where)
                for lv in (a, b)
            ]
            if all(f.is_file() for f in files):
                truth = labels if where == "holdout" else ext_labels[where]
                ra += rows_of(files[0], truth)
                rb += rows_of(files[1], truth)
        return ra, rb

    table = []
    for name, settings in levers:
        runs = [out / f"{name}-s{seed}" for seed in args.seeds if (out / f"{name}-s{seed}" / "metrics.json").is_file()]
        if not runs:
            continue
        metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
        row: dict = {"lever": name, "settings": settings, "seeds": [m["config"]["seed"] for m in metrics]}
        row["holdout"] = [m["holdout"]["mean"] for m in metrics]
        row["holdout_ci"] = pooled_ci([x for r in runs for x in rows_of(r / "predictions_holdout.csv", labels)])
        for b in BASELINES:
            vals = [m.get("baselines", {}).get(b, {}).get("mean") for m in metrics]
            row[b] = [v for v in vals if v is not None]
        for ext in externals:
            row[ext] = [m["external"][ext]["mean"] for m in metrics if ext in (m.get("external") or {})]
            for b in BASELINES:
                vals = [
                    (m["external"][ext].get("baselines") or {}).get(b, {}).get("mean")
                    for m in metrics
                    if ext in (m.get("external") or {})
                ]
                row[f"{ext}_{b}"] = [v for v in vals if v is not None]
            files = [f for f in (external_predictions_path(r, ext) for r in runs) if f.is_file()]
            row[ext + "_ci"] = pooled_ci([x for f in files for x in rows_of(f, ext_labels[ext])]) if files else None
        row["ece_cross_fitted"] = [(m.get("calibration") or {}).get("cross_fitted", {}).get("ece") for m in metrics]
        row["ece_external"] = [external_ece(r, ext_labels) for r in runs]
        row["train_seconds"] = [m.get("seconds") for m in metrics]
        table.append(row)
    (out / "ablation.json").write_text(json.dumps(table, indent=2))

    def cell(vals, ci=None):
        if not vals:
            return "-"
        s = f"{np.mean(vals):.3f}"
        if ci:
            s += f" ({ci[0]:.2f}–{ci[1]:.2f})"
        return s + " [" + ", ".join(f"{v:.2f}" for v in vals) + "]"

    head = ["lever", "seeds", "held-out mean (95 % CI) [per seed]", "signs+age baseline", "age-only baseline"]
    head += ["tumour stats+age baseline"]
    head += [f"{e} mean (95 % CI)" for e in externals] + ["cross-fitted ECE", "ECE on the external cases", "train s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in table:
        cells = [
            f"{r['lever']} (`{r['settings'] or 'base'}`)",
            ",".join(map(str, r["seeds"])),
            cell(r["holdout"], r["holdout_ci"]),
            cell(r["signs_and_age"]),
            cell(r["age_only"]),
            cell(r["tumour_stats_and_age"]),
            *(cell(r[e], r[e + "_ci"]) for e in externals),
            cell([v for v in r["ece_cross_fitted"] if v is not None]),
            cell([v for v in r["ece_external"] if v is not None]),
            f"{np.mean([s for s in r['train_seconds'] if s]):.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print("\nThe runs' baselines (fitted on each run's training split) on the external cohorts, mean over seeds:")
    for r in table:
        parts = [
            f"{e}: " + ", ".join(f"{b} {np.mean(r[f'{e}_{b}']):.3f}" for b in BASELINES if r[f"{e}_{b}"])
            for e in externals
        ]
        print(f"  {r['lever']}: " + "; ".join(parts))
    if len(table) > 1:
        first = table[0]["lever"]
        print(f"\nPaired against {first} (the same cases and seeds; difference of the challenge mean, 95 % CI):")
        for r in table[1:]:
            parts = []
            for where in ("holdout", *externals):
                ra, rb = pooled_rows(first, r["lever"], where)
                if ra and rb:
                    d, lo, hi = paired_diff_ci(ra, rb)
                    parts.append(f"{where} {d:+.3f} ({lo:+.3f} to {hi:+.3f})")
            print(f"  {r['lever']}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
