"""Per-case, per-sequence intensity normalisation inside the brain, and the intensity sanity check.

BraTS-space files carry arbitrary scanner scale (20x between cases) and bright outliers far above
the 99.5th percentile, so no fixed threshold and no min/max scaling: each sequence is z-scored with
its own brain's median and inter-quartile range (robust to both), clipped, and the background is
set to exactly 0 (as nnU-Net does for BraTS). The brain is `preprocess.brain_mask` (estimated when
the background is not exactly zero). Statistics come from the coarse grid (a regular 1-in-27
subsample on BraTS volumes), which gives the same percentiles to well under 1 % and keeps a full
case in milliseconds.

Sanity: a sequence whose spread inside the brain is negligible next to its signal level (a constant
or nearly constant brain: a broken export, a mask saved as an image) carries no contrast to classify
on; below `SPREAD_REFUSE` the case is refused with `CaseError`, below `SPREAD_WARN` it gets a
`low-contrast` warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radpath.contract.errors import CaseError

from .brain_mask import brain_mask, grid_step
from .case import SEQUENCES, Case
from .findings import QualityWarning
from .memo import PerCase

CLIP = (-5.0, 10.0)
"""Clip range of the normalised intensities (robust z units); hyperintense tumour sits at 2..8."""
SPREAD_WARN = 0.03
"""Relative spread (robust SD / (|median - background| + robust SD)) below which a sequence gets a
`low-contrast` warning; real brains measure 0.15-0.5."""
SPREAD_REFUSE = 0.005
"""Relative spread below which the case is refused: the sequence is flat inside the brain."""

__all__ = ["CLIP", "IntensityStats", "case_stats", "grid_step", "normalize", "sequence_stats", "spread_warnings"]


@dataclass(frozen=True)
class IntensityStats:
    """Robust location and scale of one sequence inside the brain, and its relative spread."""

    median: float
    scale: float
    spread: float = 1.0
    """scale / (|median - background| + scale): 1 for z-scored data, 0 for a flat brain."""


def sequence_stats(
    volume: np.ndarray, coarse_mask: np.ndarray, step: int, where: str = "volume", background: float = 0.0
) -> IntensityStats:
    """Median and IQR/1.349 (a robust standard deviation) of `volume` inside the brain.

    `coarse_mask` is the brain on the grid `volume[::step, ::step, ::step]` (`BrainMask.coarse`).
    """
    values = volume[::step, ::step, ::step][coarse_mask]
    if values.size < 100:
        raise CaseError(where, f"only {values.size} brain voxels; expected a skull-stripped brain volume")
    q25, median, q75 = np.percentile(values.astype(np.float32), [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = float(values.astype(np.float64).std())
    if not scale > 0:
        raise CaseError(where, "intensities inside the brain are constant; cannot normalise")
    spread = float(scale / (abs(median - background) + scale))
    if spread < SPREAD_REFUSE:
        raise CaseError(
            where,
            f"the intensity spread inside the brain is negligible (robust SD {scale:.3g} "
            f"at a level of {median - background:.3g}, relative spread {spread:.4f}; "
            f"expected >= {SPREAD_REFUSE}): no tissue contrast to work with",
        )
    return IntensityStats(float(median), float(scale), spread)


_STATS: PerCase[dict[str, IntensityStats]] = PerCase()


def case_stats(case: Case) -> dict[str, IntensityStats]:
    """Statistics of the four sequences inside the brain, computed once per case (`memo`)."""
    return _STATS(case, _case_stats)


def _case_stats(case: Case) -> dict[str, IntensityStats]:
    brain = brain_mask(case)
    return {
        name: sequence_stats(
            case.volumes[name],
            brain.coarse,
            brain.step,
            str(case.paths.get(name, f"{case.case_id} {name}")),
            brain.background[name],
        )
        for name in SEQUENCES
    }


def spread_warnings(case: Case) -> list[QualityWarning]:
    """`low-contrast` warnings for sequences whose spread inside the brain is very small."""
    return [
        QualityWarning(
            "low-contrast",
            f"{case.case_id}: {name} has a relative intensity spread of "
            f"{s.spread:.3f} inside the brain (real scans: 0.15-0.5)",
        )
        for name, s in case_stats(case).items()
        if s.spread < SPREAD_WARN
    ]


def normalize(values: np.ndarray, stats: IntensityStats, brain: np.ndarray) -> np.ndarray:
    """float32 robust z-scores of `values` (any shape), clipped to CLIP, exactly 0 outside `brain`."""
    z = (values.astype(np.float32) - np.float32(stats.median)) / np.float32(stats.scale)
    np.clip(z, *CLIP, out=z)
    z[~brain] = 0.0
    return z
