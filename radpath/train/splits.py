"""Stratified splits by case (never by slice: a case's neighbouring slices stay together)."""

from __future__ import annotations

import numpy as np


def stratified_kfold(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs; each class is dealt round-robin over the folds after a
    seeded shuffle, so every fold has the cohort's class proportions (±1 case)."""
    if k < 2:
        raise ValueError(f"--folds must be 0 (no cross-validation) or at least 2, got {k}")
    counts = np.bincount(labels[labels >= 0])
    if counts.size and counts[counts > 0].min() < k:
        raise ValueError(f"{k}-fold cross-validation needs at least {k} cases of every class; counts {counts.tolist()}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + start) % k
        start += len(idx)  # rotate so the small classes do not all start in fold 0
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices with about `fraction` of each class held out (at least one case of
    each class with 2+ cases when fraction > 0)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"--holdout must be in [0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 1])
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n = max(n, 1)
        held.extend(idx[:n].tolist())
    held_arr = np.sort(np.array(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), held_arr), held_arr
