"""Evaluate a trained run on other cohorts: the numbers that say whether it generalises.

A model that scores well only on cases drawn like its training cases has learned the data source,
not the tumour. `radpath train` reports cross-validation and a held-out split of the *same*
cohort; this module adds named external cohorts — for the synthetic default, cohorts drawn from
another part of the generator's randomisation space (`--style heldout`: other contrast mappings and
file quirks, subtler tumours) and from its subtle end (`--style subtle`) — and writes them into the
run's metrics.json (key `external`) and model card, next to the in-style numbers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from radpath.preprocess.cohort import read_cohort

from .calibration import ece_noise_floor, expected_calibration_error
from .examples import build_examples
from .loop import predict_proba
from .run import (
    describe_data,
    load_calibration,
    load_model,
    model_card,
    score_baselines,
    scores_with_ci,
    write_predictions,
)

log = logging.getLogger(__name__)


def cohort_style(cohort_root: Path) -> str | None:
    """The generator style named in a synthetic cohort's SYNTHETIC.md (None for other cohorts)."""
    marker = cohort_root / "SYNTHETIC.md"
    if not marker.is_file():
        return None
    for word in marker.read_text().replace("`", " ").split():
        if word.startswith("style="):
            return word.split("=", 1)[1].strip(".,;")
    return None


def external_predictions_path(run_dir: str | Path, name: str) -> Path:
    """RUN/predictions_<name>.csv, the per-case probabilities `evaluate_cohort` writes for cohort `name`
    (characters other than letters, digits, - and _ become _)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    return Path(run_dir) / f"predictions_{safe}.csv"


def evaluate_cohort(
    run_dir: str | Path, cohort: str | Path, name: str, progress: bool = True, cache_dir: str | Path | None = None
) -> dict:
    """Challenge metrics (with bootstrap CIs) of RUN's final model on every labelled case of COHORT.

    The result is stored under `external[name]` in RUN/metrics.json and the model card is rewritten,
    so the exported model (which copies both) carries it too; the per-case probabilities go to
    RUN/predictions_<name>.csv. The run's baselines (fitted on its training split) are scored on the
    same cases. Returns that entry.
    """
    run_dir, cohort_root = Path(run_dir), Path(cohort)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.json; run `radpath train` to the end first")
    variables, config = load_model(run_dir)
    co = read_cohort(cohort_root)
    entries = co.labelled()
    if not entries:
        raise ValueError(f"{cohort_root}: no labelled cases to evaluate on")
    ex = build_examples(entries, cache_dir or run_dir / "cache", progress=progress)
    probs = predict_proba(variables, config, ex, temperature=load_calibration(run_dir)["temperature"])
    scores = scores_with_ci(ex.labels, probs, ex.case_ids, config.seed)
    scores["age_used"] = config.use_age
    scores["ece"] = expected_calibration_error(probs, ex.labels)  # calibration on cases the temperature never saw
    scores["ece_noise_floor"] = ece_noise_floor(probs, seed=config.seed)
    write_predictions(external_predictions_path(run_dir, name), co.id_column, ex.case_ids, probs)
    scores.update(
        {
            "cohort": str(cohort_root),
            "style": cohort_style(cohort_root),
            "data": describe_data(cohort_root)["description"],
            "cases_not_used": [{"case_id": i, "reason": r} for i, r in ex.failed + list(co.problems)],
        }
    )
    report = json.loads(metrics_path.read_text())
    fitted = {k: v for k, v in (report.get("baselines") or {}).items() if "model" in v}
    if fitted:  # the run's baselines (fitted on its training split) on this cohort's cases
        scores["baselines"] = score_baselines(cohort_root, ex, ex, config.seed, fitted)
    report.setdefault("external", {})[name] = scores
    metrics_path.write_text(json.dumps(report, indent=2, default=float))
    (run_dir / "model_card.md").write_text(model_card(report))
    return scores
