"""The CPM-RadPath challenge metrics, computed as the challenge did.

F1 micro, Cohen's kappa (unweighted) and balanced accuracy over the predicted classes, and their
mean (the leaderboard score); same values as scikit-learn's `f1_score(average="micro")`,
`cohen_kappa_score` and `balanced_accuracy_score` (tests check this), without depending on it.
Balanced accuracy averages recall over the classes present in the truth, as scikit-learn does.
Kappa is undefined (NaN, `null` in JSON) when truth and prediction are both a single class.

Lives in `contract` because training (cross-validation, blessing) and the client (`evaluate`,
`merge-predictions --labels`) must score the same way, and the client installs no training stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radpath.contract.errors import LabelsError

from .model_io import CLASSES


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str] = CLASSES) -> np.ndarray:
    """int [len(classes), len(classes)]: rows true class, columns predicted class."""
    index = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[index[t], index[p]] += 1
    return cm


def scores_from_confusion(cm: np.ndarray, classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Challenge metrics from a confusion matrix (rows true, columns predicted)."""
    n = cm.sum()
    if n == 0:
        raise ValueError("no cases to score")
    accuracy = float(np.trace(cm) / n)
    rows, cols = cm.sum(axis=1), cm.sum(axis=0)
    expected = float((rows * cols).sum() / (n * n))
    kappa = (accuracy - expected) / (1 - expected) if expected < 1 else math.nan
    present = rows > 0
    recall = np.divide(np.diag(cm), rows, out=np.zeros(len(rows)), where=present)
    balanced = float(recall[present].mean())
    return {
        "n": int(n),
        "f1_micro": accuracy,
        "kappa": float(kappa),
        "balanced_accuracy": balanced,
        "mean": float((accuracy + kappa + balanced) / 3),
        "per_class_recall": {c: (float(r) if p else None) for c, r, p in zip(classes, recall, present)},
        "confusion_matrix": {"classes": list(classes), "rows_true_columns_predicted": cm.tolist()},
    }


def challenge_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """Challenge metrics for paired class lists (each class one of CLASSES)."""
    unknown = sorted({c for c in list(y_true) + list(y_pred) if c not in CLASSES})
    if unknown:
        raise LabelsError(f"unknown classes {unknown}; expected {', '.join(CLASSES)}")
    return scores_from_confusion(confusion_matrix(y_true, y_pred))


def bootstrap_intervals(
    y_true: Sequence[str], y_pred: Sequence[str], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals (resampling cases) of the four challenge scores."""
    t = np.array([CLASSES.index(c) for c in y_true])
    p = np.array([CLASSES.index(c) for c in y_pred])
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    samples: dict[str, list[float]] = {m: [] for m in ("f1_micro", "kappa", "balanced_accuracy", "mean")}
    for _ in range(n_boot):
        idx = rng.integers(0, len(t), len(t))
        cm = np.bincount(t[idx] * k + p[idx], minlength=k * k).reshape(k, k)
        s = scores_from_confusion(cm)
        for m in samples:
            samples[m].append(s[m])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))) for m, v in samples.items()}


def evaluate_files(predictions_csv: str | Path, labels_csv: str | Path) -> dict[str, Any]:
    """Score a predictions CSV against a labels CSV.

    Every labelled case must be predicted exactly once. Rows of the labels CSV with a blank class
    (validation/test releases, cases not yet graded) are skipped and counted in
    `skipped_unlabelled`: the file `classify-cohort` accepts, `evaluate` accepts too."""
    from radpath.contract.labels import read_label_table

    from .predictions_csv import read_predictions

    preds = {r.case_id: r.label for r in read_predictions(predictions_csv).rows}
    truth = read_label_table(labels_csv, require_class=False)
    unlabelled = [i for i in truth.ids if truth.classes[i] is None]
    labelled = {i: c for i in truth.ids if (c := truth.classes[i]) is not None}  # case id -> class
    if not labelled:
        raise LabelsError(f"{labels_csv}: no row has a class (A, O or G); nothing to score")
    missing = [i for i in labelled if i not in preds]
    extra = [i for i in preds if i not in truth.classes]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} labelled cases have no prediction (e.g. {', '.join(missing[:5])})")
        if extra:
            parts.append(f"{len(extra)} predicted cases are not in the labels (e.g. {', '.join(extra[:5])})")
        raise LabelsError(f"{predictions_csv} vs {labels_csv}: " + "; ".join(parts))
    result = challenge_scores(list(labelled.values()), [preds[i] for i in labelled])
    result["skipped_unlabelled"] = len(unlabelled)
    result["predictions"] = str(predictions_csv)
    result["labels"] = str(labels_csv)
    return result


def format_scores(s: dict[str, Any]) -> str:
    """Human-readable summary: the four scores, per-class recall and the confusion matrix."""
    cm = s["confusion_matrix"]
    lines = [
        f"cases {s['n']}",
        f"F1 micro           {s['f1_micro']:.4f}",
        f"Cohen's kappa      {s['kappa']:.4f}",
        f"balanced accuracy  {s['balanced_accuracy']:.4f}",
        f"mean (challenge)   {s['mean']:.4f}",
        "recall  " + "  ".join(f"{c} {'-' if r is None else f'{r:.3f}'}" for c, r in s["per_class_recall"].items()),
        "confusion (rows true, columns predicted)",
        "      " + "".join(f"{c:>6}" for c in cm["classes"]),
    ]
    for c, row in zip(cm["classes"], cm["rows_true_columns_predicted"]):
        lines.append(f"{c:>6}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
