"""The brain mask: which voxels are brain, estimated from the data instead of trusting exact zeros.

BraTS files are skull-stripped with the background exactly 0, and there "non-zero in any sequence" is
the brain (bias-field correction leaves a few slightly negative voxels inside it). Files that were
resampled or stored as float (cubic interpolation is nibabel's and most tools' default) carry a
background that is *near* zero, not zero: there "non-zero" is 70-80 % of the volume, the robust
statistics collapse and the whole brain looks like tumour. So the mask is estimated:

1. per sequence, the background level is the volume's most common value (0 for BraTS, a constant
   for other conventions) and the signal is the distance from it, in units of that sequence's
   98th percentile (scale-free);
2. the four sequences are combined by their maximum (CSF is dark on FLAIR and T1 but bright on T2,
   so every brain tissue is bright in at least one sequence);
3. the cut-off is a fraction of the brain's typical signal, the brain level being found by Otsu's
   threshold on the coarse grid; magnitude images are positive, so negative values (interpolation
   ringing) count as background unless the data are signed throughout (z-scored inputs, where the
   magnitude averaged over a 3-voxel neighbourhood is the signal: a brain voxel at its sequence's
   median is near zero in every sequence);
4. the largest connected component, holes filled (necrosis, dark calcifications).

When the voxels outside that estimate are exactly zero (BraTS convention: away from the brain, and
no more than a trace of faint voxels hugging it), the mask *is* "non-zero in any sequence", bit for
bit as before; otherwise the estimate is used and a `near-zero-background`
warning is raised. Everything (normalisation statistics, tumour detection, the model input's crop and
its background) uses this one mask. Work is done on the coarse grid (`grid_step`, 3 mm on BraTS
volumes); the full-resolution mask is only built for the slices or boxes that need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from radpath.contract.errors import CaseError

from .case import SEQUENCES, Case
from .findings import QualityWarning
from .memo import PerCase

log = logging.getLogger(__name__)

CUT_FRACTION = 0.25
"""Brain cut-off as a fraction of the brain's median signal: every tissue is brighter than this in
at least one sequence, and a voxel half inside the brain (partial volume) is too."""
EXACT_ZERO_OUTSIDE = 0.02
"""Largest fraction of non-zero voxels outside the (dilated) estimate for which the background counts
as exactly zero, and the mask is "non-zero in any sequence" (BraTS)."""
EXACT_ZERO_SHELL = 0.02
"""... and largest share (of the estimate's volume) of faint non-zero voxels hugging it: BraTS files
measure 0.05-0.3 %, a 2-voxel rim of interpolation ringing 10-25 %."""
BRAIN_COVERS_WARN = 0.6
"""Brain fraction of the volume above which a `brain-covers-volume` warning is raised (a BraTS brain
is 15-20 % of its 240 x 240 x 155 grid; a tight crop may reach half)."""
BRAIN_COVERS_REFUSE = 0.92
"""Brain fraction of the volume above which there is no background to tell the brain from: refused."""
MIN_BRAIN_VOXELS = 100


def grid_step(shape: tuple[int, ...]) -> int:
    """Stride of the coarse grid: 3 (3 mm) for BraTS-sized volumes, 1 for small test volumes, so a
    small tumour keeps enough coarse voxels to survive the morphological clean-up."""
    return max(1, min(3, round(min(shape[:2]) / 80)))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` plus every background region that does not touch the array's border.

    Same result as `scipy.ndimage.binary_fill_holes` (6-connected background), but one labelling
    pass instead of a dilation iterated to convergence: 10x faster on a tumour's box.
    """
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask
    border = np.concatenate(
        [
            labels[0].ravel(),
            labels[-1].ravel(),
            labels[:, 0].ravel(),
            labels[:, -1].ravel(),
            labels[..., 0].ravel(),
            labels[..., -1].ravel(),
        ]
    )
    outside = np.zeros(n + 1, dtype=bool)
    outside[np.unique(border)] = True
    outside[0] = True  # label 0 is the mask itself
    filled: np.ndarray = mask | ~outside[labels]
    return filled


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest: np.ndarray = labels == int(sizes.argmax())
    return largest


@dataclass(frozen=True)
class BrainMask:
    """The brain of one case on the coarse grid, and how to rebuild it at full resolution.

    `estimated=False`: the BraTS convention holds (background exactly zero) and the mask is "non-zero
    in any sequence". `estimated=True`: the background is near zero (or another constant) and the
    mask is `signal > cut`, its largest component with holes filled; `background`, `reference`,
    `signed` and `cut` define the signal (see the module docstring).
    """

    coarse: np.ndarray
    step: int
    estimated: bool
    background: dict[str, float]
    reference: dict[str, float]
    signed: bool
    cut: float
    fraction: float
    """Brain voxels / all voxels."""

    def region(self, case: Case, region: tuple[slice, ...]) -> np.ndarray:
        """bool: the full-resolution mask of `case` restricted to `region` (three unit-step slices)."""
        if not self.estimated:
            return case.nonzero_any(region)
        # interior of the coarse mask: brain; its edge: decided voxel by voxel on the signal
        inner = _upsample(self.coarse_inner, self.step, case.shape, region)
        outer = _upsample(self.coarse_outer, self.step, case.shape, region)
        sig = signal(case, region, self.background, self.reference, self.signed)
        return inner | (outer & (sig > self.cut))

    @cached_property
    def coarse_inner(self) -> np.ndarray:
        inner: np.ndarray = ndimage.binary_erosion(self.coarse)
        return inner

    @cached_property
    def coarse_outer(self) -> np.ndarray:
        outer: np.ndarray = ndimage.binary_dilation(self.coarse)
        return outer

    def plane(self, case: Case, k: int) -> np.ndarray:
        """bool [x, y]: the full-resolution mask of axial slice `k`."""
        return self.region(case, (slice(None), slice(None), slice(k, k + 1)))[:, :, 0]

    def full(self, case: Case) -> np.ndarray:
        return self.region(case, (slice(None),) * 3)

    def warnings(self, case_id: str) -> list[QualityWarning]:
        out = []
        if self.estimated:
            out.append(
                QualityWarning(
                    "near-zero-background",
                    f"{case_id}: the background is not exactly zero (resampled or float data); "
                    f"the brain mask was estimated from the intensities ({100 * self.fraction:.0f} % "
                    "of the volume)",
                )
            )
        if self.fraction > BRAIN_COVERS_WARN:
            out.append(
                QualityWarning(
                    "brain-covers-volume",
                    f"{case_id}: the brain covers {100 * self.fraction:.0f} % of the volume "
                    f"(a BraTS brain covers 15-20 %); check that the scan is skull-stripped "
                    "and has a background",
                )
            )
        return out


def _upsample(coarse: np.ndarray, g: int, shape: tuple[int, ...], region: tuple[slice, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of a `[::g]*3` grid to `shape`, only over `region`."""
    if g == 1:
        return coarse[region]
    bounds = [sl.indices(n)[:2] for sl, n in zip(region, shape)]
    block = coarse[tuple(slice(a // g, (b - 1) // g + 1) for a, b in bounds)]
    for axis in range(3):
        block = np.repeat(block, g, axis=axis)
    return block[tuple(slice(a - (a // g) * g, b - (a // g) * g) for a, b in bounds)]


def _mode(values: np.ndarray) -> float:
    """Most common value: exact for integers and for exactly repeated floats (a zero background),
    else the centre of the fullest of 2000 histogram bins."""
    vals, counts = np.unique(values, return_counts=True)
    top = int(counts.argmax())
    if counts[top] >= 0.05 * values.size:
        return float(vals[top])
    lo, hi = np.percentile(values, [0.5, 99.5])
    if not hi > lo:
        return float(lo)
    hist, edges = np.histogram(values, bins=2000, range=(lo, hi))
    i = int(hist.argmax())
    return float((edges[i] + edges[i + 1]) / 2)


def signal(
    case: Case, region: tuple[slice, ...], background: dict[str, float], reference: dict[str, float], signed: bool
) -> np.ndarray:
    """float32: max over sequences of (value - background) / reference (absolute value if not `signed`)."""
    out: np.ndarray | None = None
    for name in SEQUENCES:
        v = (case.volumes[name][region].astype(np.float32) - np.float32(background[name])) / np.float32(reference[name])
        if not signed:
            np.abs(v, out=v)
        out = v if out is None else np.maximum(out, v, out=out)
    assert out is not None  # SEQUENCES is never empty
    return out


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centers)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(between[:-1].argmax())])


def estimate_brain(case: Case) -> BrainMask:
    """Estimate the brain mask of `case` (see the module docstring). Raises `CaseError` when there is
    no background to tell the brain from, or no brain."""
    g = grid_step(case.shape)
    coarse_region = (slice(None, None, g),) * 3
    where = str(case.paths.get("flair", case.case_id))
    background, reference = {}, {}
    negative_share = 0.0
    for name in SEQUENCES:
        v = case.volumes[name][coarse_region]
        b = _mode(v.ravel())
        d = v.astype(np.float32) - np.float32(b)
        r = float(np.percentile(np.abs(d), 98))
        if not r > 0:
            r = float(np.abs(d).max())
        if not r > 0:
            raise CaseError(case.paths.get(name, case.case_id), "the image is constant; expected a brain MRI")
        background[name], reference[name] = b, r
        strong = np.abs(d) > 0.1 * r
        negative_share = max(negative_share, float((d[strong] < 0).mean()) if strong.any() else 0.0)
    # magnitude images are positive: widespread strong negatives mean signed (z-scored) data
    signed = negative_share < 0.15
    sig = signal(case, coarse_region, background, reference, signed)
    if not signed:
        # signed data (z-scored): a brain voxel near the median is near zero in every sequence, so
        # the brain is where the *neighbourhood* carries signal
        sig = ndimage.uniform_filter(sig, 3, mode="constant")
    # bright outliers (far above the 98th percentile) would pull Otsu's split between them and the rest
    level = _otsu(np.minimum(sig[sig > 0.02], 1.5)) if (sig > 0.02).sum() > 10 else 0.0
    above = sig[sig > level]
    if above.size < MIN_BRAIN_VOXELS // g**3:
        raise CaseError(where, f"no brain found: only {above.size} voxels stand out from the background")
    cut = CUT_FRACTION * float(np.median(above))
    est = fill_holes(largest_component(sig > cut))

    nonzero = case.nonzero_any(coarse_region)
    outside = ~ndimage.binary_dilation(est, iterations=2)
    shell = float((nonzero & ~est).sum()) / max(float(est.sum()), 1.0)
    exact_zero = bool(outside.any() and nonzero[outside].mean() <= EXACT_ZERO_OUTSIDE and shell <= EXACT_ZERO_SHELL)
    coarse = nonzero if exact_zero else est
    fraction = float(coarse.mean())
    if fraction > BRAIN_COVERS_REFUSE:
        raise CaseError(
            where,
            f"the brain would cover {100 * fraction:.0f} % of the volume: there is no "
            "background to tell it from (expected a skull-stripped brain with background "
            "around it, as BraTS files have, about 15-20 % brain)",
        )
    if coarse.sum() * g**3 < MIN_BRAIN_VOXELS:
        raise CaseError(
            where, f"only about {int(coarse.sum()) * g**3} brain voxels; expected a skull-stripped brain volume"
        )
    if not exact_zero:
        log.warning(
            "%s: background not exactly zero; brain mask estimated (%.0f%% of the volume)", case.case_id, 100 * fraction
        )
    return BrainMask(
        coarse=coarse,
        step=g,
        estimated=not exact_zero,
        background=background,
        reference=reference,
        signed=signed,
        cut=cut,
        fraction=fraction,
    )


_BRAINS: PerCase[BrainMask] = PerCase()


def brain_mask(case: Case) -> BrainMask:
    """The case's brain mask, estimated once per case (`memo`)."""
    return _BRAINS(case, estimate_brain)


def full_brain_mask(case: Case) -> np.ndarray:
    """bool [x, y, z]: the full-resolution brain mask ("non-zero in any sequence" on BraTS files,
    estimated from the intensities when the background is not exactly zero). Costs more than the
    whole pipeline: the pipeline itself uses the coarse grid."""
    return brain_mask(case).full(case)
