"""What a model must beat: simple baselines fitted on the same training split, scored on the same
held-out split as the image model, so a reader sees at once how much the image adds.

- `age_only`: multinomial logistic regression on the patient's age (real glioblastoma patients are
  older: median age A 39, O 54.5, G 60 years). Any cohort with ages.
- `signs_and_age`: the same on the radiological signs the synthetic generator drew for each case
  (enhancement, T2-FLAIR mismatch, calcification, frontal site, midline crossing, log lesion volume,
  from `Segmentation/appearance.csv`) plus age. Only synthetic cohorts have that file; it is what a
  reader who sees every sign perfectly could do with a linear rule, the ceiling a model reading the
  tumour should reach.
- `tumour_stats_and_age`: the same on the detected tumour's 3-D statistics (`preprocess.tumor_stats`:
  size, site, robust z-scores per sequence, enhancing, mismatch and dark shares) plus age, with a
  stronger penalty (C = 0.1, the best of 0.03-1 in 5-fold cross-validation on the demo cohort). Any
  cohort: it reads the images, not the generator, so it also runs on the licensed data; a radiomics
  rule an image model should beat.

Logistic regression with class-balanced weights (the classes are imbalanced and the challenge
scores balanced accuracy) and an L2 penalty (C = 1, as scikit-learn's default), on standardised
features, solved with L-BFGS: numpy and scipy only, so training needs no scikit-learn. The fitted
coefficients are kept, so the same baselines score external cohorts too.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from radpath.contract.model_io import NUM_CLASSES, TUMOR_STATS, fill_ages

SIGN_COLUMNS = ("enhancing", "mismatch", "calcified", "frontal", "midline", "lesion_ml")
"""Columns of the generator's appearance.csv used by `signs_and_age` (those present are used)."""

APPEARANCE_CSV = Path("Segmentation") / "appearance.csv"


def read_signs(cohort_root: str | Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]] | None:
    """(feature names, {case ID: float features}) from a synthetic cohort's appearance.csv, or None
    when the cohort has no such file or it holds none of SIGN_COLUMNS. Empty cells (a sign that does
    not apply) count as 0; the lesion volume enters as log(1 + ml)."""
    path = Path(cohort_root) / APPEARANCE_CSV
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = tuple(c for c in SIGN_COLUMNS if c in (reader.fieldnames or ()))
        rows = list(reader)
    if not names:
        return None
    out = {}
    for row in rows:
        values = []
        for name in names:
            cell = (row.get(name) or "").strip()
            try:
                v = float(cell) if cell else 0.0
            except ValueError:
                v = 1.0 if cell.lower() in ("true", "yes") else 0.0
            values.append(np.log1p(max(v, 0.0)) if name == "lesion_ml" else v)
        out[row.get("case_id") or row.get(next(iter(row)), "")] = np.array(values, np.float64)
    return names, out


def age_features(ages_days: np.ndarray) -> np.ndarray:
    """[n, 1] age in years (unknown ages get the contract's fill, as the model's age input does)."""
    return (fill_ages(ages_days, len(ages_days)).astype(np.float64) / 365.25)[:, None]


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> dict:
    """Class-balanced, L2-penalised multinomial logistic regression; returns its parameters."""
    x = np.asarray(x, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    n, d = z.shape
    counts = np.bincount(y, minlength=NUM_CLASSES).astype(np.float64)
    weights = np.where(counts[y] > 0, n / (np.count_nonzero(counts) * np.maximum(counts[y], 1)), 0.0)
    onehot = np.eye(NUM_CLASSES)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * NUM_CLASSES].reshape(d, NUM_CLASSES), theta[d * NUM_CLASSES :]
        logits = z @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -(weights * (onehot * logp).sum(axis=1)).sum() + 0.5 * (w**2).sum() / c
        g_logits = weights[:, None] * (np.exp(logp) - onehot)
        grad = np.concatenate([(z.T @ g_logits + w / c).ravel(), g_logits.sum(axis=0)])
        return float(value), grad

    res = minimize(loss, np.zeros(d * NUM_CLASSES + NUM_CLASSES), jac=True, method="L-BFGS-B")
    theta = res.x
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": theta[: d * NUM_CLASSES].reshape(d, NUM_CLASSES).tolist(),
        "intercept": theta[d * NUM_CLASSES :].tolist(),
    }


def predict_logistic(params: Mapping[str, Sequence], x: np.ndarray) -> np.ndarray:
    """[n, 3] class probabilities of a `fit_logistic` model."""
    z = (np.asarray(x, np.float64) - np.asarray(params["mean"])) / np.asarray(params["scale"])
    logits = z @ np.asarray(params["coef"]) + np.asarray(params["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


STATS_C = 0.1
"""L2 penalty of `tumour_stats_and_age` (inverse strength, as scikit-learn's C)."""
BASELINE_C = {"age_only": 1.0, "signs_and_age": 1.0, "tumour_stats_and_age": STATS_C}


def baseline_features(
    name: str,
    case_ids: Sequence[str],
    ages_days: np.ndarray,
    signs: Mapping[str, np.ndarray] | None,
    tumor_stats: np.ndarray | None = None,
) -> np.ndarray | None:
    """The feature matrix of baseline `name` for these cases (None: a case lacks its signs, or no
    tumour statistics were given)."""
    age = age_features(ages_days)
    if name == "age_only":
        return age
    if name == "tumour_stats_and_age":
        return None if tumor_stats is None else np.hstack([np.asarray(tumor_stats, np.float64), age])
    if signs is None or any(cid not in signs for cid in case_ids):
        return None
    return np.hstack([np.stack([signs[cid] for cid in case_ids]), age])


def _feature_names(name: str, found: tuple | None) -> list[str]:
    if name == "age_only":
        return ["age_years"]
    if name == "tumour_stats_and_age":
        return [*TUMOR_STATS, "age_years"]
    return [*(found[0] if found else ()), "age_years"]


def fit_baselines(
    cohort_root: str | Path,
    case_ids: Sequence[str],
    labels: np.ndarray,
    ages_days: np.ndarray,
    tumor_stats: np.ndarray | None = None,
) -> dict[str, dict]:
    """{name: {"features": [...], "model": params}} fitted on these (training-split) cases."""
    found = read_signs(cohort_root)
    signs = found[1] if found else None
    out = {}
    for name in BASELINE_C:
        x = baseline_features(name, case_ids, ages_days, signs, tumor_stats)
        if x is None:
            continue
        out[name] = {
            "features": _feature_names(name, found),
            "n_train": int(len(labels)),
            "model": fit_logistic(x, labels, c=BASELINE_C[name]),
        }
    return out


def predict_baselines(
    fitted: Mapping[str, Mapping],
    cohort_root: str | Path,
    case_ids: Sequence[str],
    ages_days: np.ndarray,
    tumor_stats: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{name: probabilities [n, 3]} of each fitted baseline on a cohort's cases (a baseline whose
    features the cohort lacks, e.g. signs outside a synthetic cohort, is left out)."""
    found = read_signs(cohort_root)
    signs = found[1] if found else None
    out = {}
    for name, entry in fitted.items():
        if _feature_names(name, found) != list(entry["features"]):
            continue  # e.g. signs outside a synthetic cohort, or statistics of another version
        x = baseline_features(name, case_ids, ages_days, signs, tumor_stats)
        if x is not None:
            out[name] = predict_logistic(entry["model"], x)
    return out
