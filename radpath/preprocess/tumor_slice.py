"""Find the tumour and the axial slice where it is largest.

Real gliomas are far less conspicuous than a fixed "FLAIR z > 3" assumes: on BraTS-preprocessed
cases the tumour's FLAIR robust z-score has a median of 2.6-2.9, lower-grade gliomas less, down to
about 1.5, which is the brightness of normal grey matter. What still tells such a lesion from normal
tissue, and what this detector uses (classic methods only, on the coarse grid):

- **no bias field**: a smooth (cubic) trend, fitted robustly over the brain, is removed from the
  FLAIR and T2 maps first (a multiplicative bias field is nearly additive in z units; a compact
  lesion does not fit a cubic and, being bright, is left out of the fit);
- **size and compactness**: a glioma is a blob centimetres across; the grey-matter ribbon is 2-4 mm
  thick and sits between dark CSF and darker white matter. Every map is smoothed (masked Gaussian,
  `SMOOTH_MM`), which averages the ribbon and the noise away and keeps a lesion;
- **depth**: normal tissue is compared with normal tissue at the same depth below the brain's surface
  (cortex near the surface, deep grey nuclei deep inside), shell by shell;
- **asymmetry**: a glioma is (nearly always) one-sided, normal anatomy is roughly mirror-symmetric
  on the RAS grid. The evidence is the FLAIR excess over *both* the brain's typical level and the
  mirrored point (so deep grey nuclei, bright on both sides, and a CSF-dark mirror point, do not
  count);
- **T2**: tumour and oedema are T2-bright; CSF is T2-bright but FLAIR-dark and drops out on FLAIR;
  the T2 excess adds to the evidence;
- **a per-case threshold**: evidence is measured in units of the robust spread of its depth shell in
  this brain (how much normal anatomy and noise vary here; taken from the shell's darker half, which
  a large bright lesion filling part of the shell leaves alone), then grown by hysteresis from seeds
  (`SEED_SPREADS`) down to `GROW_SPREADS`; seeds must lie off the brain's rim, where FLAIR is
  often artificially bright;
- **a component score**: the candidate with the largest integrated evidence wins; it counts as
  found when its peak and its size are clear of what normal brains produce (`FOUND_SPREADS`,
  `MIN_TUMOR_FRACTION`).

The tumour's extent at full resolution is then searched around the winning component
(`REFINE_REACH`): voxels brighter on FLAIR than `REFINE_LEVEL` x the component's own median z,
holes filled (necrosis, the
FLAIR-dark centre of a T2-FLAIR mismatch lesion), kept where they touch the component. The axial
slice with the largest area of that mask is the max-tumour slice.

No tumour: the result has `found=False` and `voxels=0`. Its slice is the best candidate's when one
stands out a little (`possible=True`, warning `tumour-uncertain`: the most suspicious region is a
better view for the classifier than an arbitrary one), else the slice with the largest brain area
(the brain's centre, warning `no-tumour`); and callers that must not guess pass
`require=True` and get `NoTumorFoundError`. A "tumour" covering most of the brain is garbage (the
brain mask or the intensities are broken): `CaseError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from scipy import ndimage

from radpath.contract.errors import CaseError

from .brain_mask import brain_mask, fill_holes
from .case import Case
from .findings import QualityWarning
from .memo import PerCase
from .normalize import CLIP, case_stats

log = logging.getLogger(__name__)

BRAIN_MM = 110.0
"""Cube root of an adult brain's volume in mm (about 1.3 l): lengths below are in brain-relative
millimetres, so a test volume holding a small brain is treated like a full-size one."""
DETECT_MM = 4
"""Detection grid spacing on the BraTS grid (mm): one voxel in 4 per axis on a 240 x 240 x 155 case
(the brain mask's own grid is 3 mm there); half-size volumes use 2-voxel strides (the same 4 mm),
small test volumes their brain grid. A 6 mm-smoothed evidence map loses nothing at 4 mm, and it is
2.4x fewer voxels than 3 mm: detection stays well under nibabel's load time."""
SMOOTH_MM = 6.0
"""Gaussian sigma of the evidence maps: wider than the cortical ribbon, narrower than a glioma."""
FLATTEN_BAND = (10, 75)
"""Percentiles of the residual between which voxels fit the trend (bright lesions, dark CSF left out)."""
FIT_EVERY = 3
"""The trend is fitted to every `FIT_EVERY`-th brain voxel (in memory order) and removed from all."""
FLATTEN_DEGREE = 3
"""Degree of the polynomial trend (bias field) removed from the FLAIR and T2 maps: 3 follows a
smooth field varying over 5-10 cm; a compact lesion does not fit one."""
DEPTH_MIN_SHARE = 0.03
"""Smallest depth shell, as a share of the brain (so no lesion dominates its shell's statistics)."""
RIM_MM = 6.0
"""Seeds must lie at least this far inside the brain's edge."""
MIRROR_WEIGHT = 1.0
"""Weight of the asymmetry term (FLAIR excess over the mirrored point)."""
T2_WEIGHT = 0.3
"""Weight of the T2 excess in the evidence."""
SEED_SPREADS = 3.0
"""A component needs a voxel this many robust spreads of the evidence above its median."""
GROW_SPREADS = 1.5
"""Hysteresis: the component grows over voxels this many spreads above the median."""
SELECT_POWER = 4.0
"""The winning candidate has the largest sum over its voxels of (evidence - GROW_SPREADS) ** this."""
GROW_OF_PEAK = 0.4
"""... and over voxels above this fraction of the component's peak."""
FOUND_SPREADS = 6.5
"""Peak evidence (spreads) above which the winning component counts as a tumour: set above what
tumour-free brains of every look of the generator's `broad` style reach (template anatomy, generator
version 3: top score 5.8 of 120 at half size, none found; tests/bench/bench_detection.py)."""
MIN_TUMOR_FRACTION = 0.002
"""Smallest tumour, as a fraction of brain volume (2.6 ml in a 1.3 l brain), accepted as found."""
REFINE_REACH = 2
"""Coarse voxels around the winning component searched at full resolution (its dimmer margin)."""
REFINE_LEVEL = 0.4
"""Full-resolution tumour: FLAIR z above this fraction of the component's median z."""
MOST_OF_BRAIN_WARN = 0.3
"""Tumour share of the brain above which a `tumour-most-of-brain` warning is raised (the largest
gliomas with their oedema reach about a fifth of the brain)."""
MOST_OF_BRAIN_REFUSE = 0.5
"""Tumour share of the brain above which the case is refused: the "tumour" is the brain."""


class NoTumorFoundError(CaseError):
    """No FLAIR/T2-hyperintense lesion large enough to be a diffuse glioma."""


@dataclass(frozen=True)
class TumorSlice:
    """Where the tumour is: the axial index (`volume[:, :, index]`), its volume in voxels, whether one
    was found, the evidence score of the winning candidate (robust spreads; 0 when none), and the
    full-resolution tumour mask inside `box` (use `mask(case)` for the whole volume)."""

    index: int
    voxels: int
    found: bool
    score: float = 0.0
    box: tuple[slice, slice, slice] = (slice(0, 0),) * 3
    box_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), bool), repr=False)
    brain_fraction: float = 0.0
    """Tumour voxels / brain voxels."""
    possible: bool = False
    """Not found, but a sub-threshold candidate (score between `SEED_SPREADS` and `FOUND_SPREADS`)
    gave the slice: the most suspicious region beats the brain's centre as the model's view. Its `box`
    and `box_mask` are kept (the model's tumour view centres on them); `mask()` stays empty."""

    def mask(self, case: Case) -> np.ndarray:
        """bool [x, y, z]: the tumour at full resolution (all False when none was found)."""
        out = np.zeros(case.shape, dtype=bool)
        if self.found:
            out[self.box] = self.box_mask
        return out


def _smooth(values: np.ndarray, weight: np.ndarray, weight_smooth: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian average of `values` over the voxels where `weight` is 1 (no bleed from the background)."""
    smooth: np.ndarray = ndimage.gaussian_filter(values * weight, sigma, mode="constant") / weight_smooth
    return smooth


def _mirror_index(brain: np.ndarray) -> np.ndarray:
    """Index along axis 0 (left-right on the RAS grid) of each column's mirror image across the brain's
    mid-sagittal plane (taken through the centre of the brain's left-right extent)."""
    xs = np.nonzero(brain.any(axis=(1, 2)))[0]
    centre2 = int(xs[0] + xs[-1])  # twice the centre, an integer: the mirror is exact on the grid
    return np.clip(centre2 - np.arange(brain.shape[0]), 0, brain.shape[0] - 1)


def _depth_bins(depth: np.ndarray, brain: np.ndarray, min_voxels: int) -> np.ndarray:
    """int label per brain voxel: shells of equal depth (coarse voxels from the edge), the deepest
    merged until each holds `min_voxels` (a small deep shell would be dominated by a deep tumour)."""
    d = np.floor(depth[brain]).astype(np.int64)
    counts = np.bincount(d)
    label = np.arange(counts.size)
    # merge deep shells that are too small into the shell above them
    acc = 0
    for k in range(counts.size - 1, 0, -1):
        acc += counts[k]
        if acc < min_voxels:
            label[k] = k - 1
        else:
            acc = 0
    for k in range(1, counts.size):  # follow merges to their final shell
        if label[k] != k:
            label[k] = label[label[k]]
    shells: np.ndarray = label[d]
    return shells


def _by_depth(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """`values` (brain voxels) standardised by the median and robust spread of their depth shell."""
    out = np.empty_like(values)
    for k in np.unique(bins):
        sel = bins == k
        # the spread from the dark half: a bright lesion filling a fair share of a shell leaves it alone
        q10, med = np.percentile(values[sel], [10, 50])
        spread = (med - q10) / 1.2816
        out[sel] = (values[sel] - med) / (spread if spread > 1e-6 else 1.0)
    return out


def _trend_design(brain: np.ndarray) -> np.ndarray:
    """float64 [brain voxels, terms]: the monomials of (x, y, z) up to `FLATTEN_DEGREE`, coordinates
    centred and scaled to the brain's extent (well conditioned)."""
    idx = np.nonzero(brain)
    x, y, z = [(i - i.mean()) / max(float(np.ptp(i)), 1.0) for i in idx]
    terms = [np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    if FLATTEN_DEGREE >= 3:
        terms += [x**3, y**3, z**3, x * x * y, x * x * z, y * y * x, y * y * z, z * z * x, z * z * y, x * y * z]
    return np.stack(terms, axis=1)


def _flatten(values: np.ndarray, brain: np.ndarray, design: np.ndarray) -> np.ndarray:
    """`values` minus a smooth trend over the brain: a cubic in (x, y, z) (`design`, see
    `_trend_design`) fitted by least squares to the voxels between the `FLATTEN_BAND` percentiles of
    the first fit's residual, so a bright lesion (and dark CSF) does not pull it. Removes what a bias
    field adds to a z-score (a multiplicative field is nearly additive in z units) before anything
    is compared. Normal equations (terms x terms): milliseconds where a full least-squares solve
    takes a quarter of a second or more."""
    v = values[brain].astype(np.float64)
    fit = np.arange(v.size) % FIT_EVERY == 0  # a smooth trend: a regular third of the voxels pins it
    keep = fit
    for _ in range(2):
        # einsum, not BLAS: a multi-threaded BLAS on a busy machine turned 20 ms into seconds
        a = design[keep]
        gram = np.einsum("ij,ik->jk", a, a, optimize=False)
        rhs = np.einsum("ij,i->j", a, v[keep], optimize=False)
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        resid = v - np.einsum("ij,j->i", design, coef, optimize=False)
        lo, hi = np.percentile(resid[fit], FLATTEN_BAND)
        keep = fit & (resid > lo) & (resid < hi)
    out = np.zeros_like(values)
    out[brain] = (resid + float(np.median(v))).astype(values.dtype)
    return out


def detection_grid(case: Case) -> tuple[np.ndarray, int]:
    """(bool brain mask on the detection grid, its stride in voxels): the brain mask's coarse grid, or
    a coarser one (`DETECT_MM`) for full-size volumes, sampled from it by nearest neighbour."""
    brain = brain_mask(case)
    step = max(brain.step, int(DETECT_MM * min(case.shape[:2]) / 240 + 1e-9))
    if step == brain.step:
        return brain.coarse, step
    if not brain.estimated:  # BraTS convention: the brain is "non-zero in any sequence", sampled directly
        return case.nonzero_any((slice(None, None, step),) * 3), step
    idx = [
        np.minimum(np.rint(np.arange(0, n, step) / brain.step).astype(np.intp), c - 1)
        for n, c in zip(case.shape, brain.coarse.shape)
    ]
    sampled: np.ndarray = brain.coarse[np.ix_(*idx)]
    return sampled, step


def evidence(case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    """(evidence map in robust spreads on the coarse grid, seed-allowed mask, coarse voxels per mm).

    See the module docstring for what the evidence is made of.
    """
    full_b, g = detection_grid(case)
    stats = case_stats(case)
    # everything on the brain's box (+ 1 voxel of background): the Gaussians of masked values and
    # the distance to the background are the same as on the whole grid, at a fraction of the cost
    idx = np.nonzero(full_b.any(axis=(1, 2))), np.nonzero(full_b.any(axis=(0, 2))), np.nonzero(full_b.any(axis=(0, 1)))
    lo = [max(int(i[0][0]) - 1, 0) for i in idx]
    hi = [min(int(i[0][-1]) + 2, n) for i, n in zip(idx, full_b.shape)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    coarse = tuple(slice(a * g, b * g, g) for a, b in zip(lo, hi))
    B = full_b[crop]
    mm = (B.sum() * g**3) ** (1 / 3) / BRAIN_MM / g
    sigma = SMOOTH_MM * mm
    w = B.astype(np.float32)
    ws = ndimage.gaussian_filter(w, sigma, mode="constant")
    ws[ws < 1e-3] = 1e-3
    depth = ndimage.distance_transform_edt(np.pad(B, 1))[1:-1, 1:-1, 1:-1]
    bins = _depth_bins(depth, B, int(DEPTH_MIN_SHARE * B.sum()) + 1)
    design = _trend_design(B)
    maps = {}
    for name in ("flair", "t2"):
        z = (case.volumes[name][coarse].astype(np.float32) - np.float32(stats[name].median)) / np.float32(
            stats[name].scale
        )
        np.clip(z, *CLIP, out=z)
        smooth = _smooth(z, w, ws, sigma)
        smooth = _flatten(smooth, B, design)
        m = np.zeros_like(smooth)
        m[B] = _by_depth(smooth[B], bins)  # normal tissue level at this depth (cortex, deep nuclei)
        maps[name] = m
    f, t2 = maps["flair"], maps["t2"]
    xm = _mirror_index(B)
    f_mirror = np.where(B[xm], f[xm], 0.0)
    asym = f - np.maximum(f_mirror, 0.0)
    ev = np.minimum(f, MIRROR_WEIGHT * asym) + T2_WEIGHT * np.clip(t2, 0.0, None)
    ev[f <= 0] = np.minimum(ev[f <= 0], 0.0)  # FLAIR-dark (CSF-like) voxels carry no evidence
    ev[~B] = 0.0
    ev_full = np.zeros(full_b.shape, dtype=ev.dtype)
    ev_full[crop] = ev
    interior = np.zeros(full_b.shape, dtype=bool)
    interior[crop] = depth > RIM_MM * mm
    return ev_full, interior, mm


def _coarse_tumor(case: Case) -> tuple[np.ndarray, float]:
    """(bool component on the detection grid, its peak evidence) of the best candidate, or empties."""
    ev, interior, _ = evidence(case)
    grow = ev > GROW_SPREADS
    labels, n = ndimage.label(grow)
    if n == 0:
        return np.zeros_like(grow), 0.0
    seeds = np.unique(labels[grow & interior & (ev > SEED_SPREADS)])
    seeds = seeds[seeds > 0]
    if seeds.size == 0:
        return np.zeros_like(grow), 0.0
    mass = ndimage.sum_labels(np.clip(ev - GROW_SPREADS, 0.0, None) ** SELECT_POWER, labels, seeds)
    best = int(seeds[int(np.argmax(mass))])
    comp = labels == best
    peak = float(ev[comp & interior].max())
    # hysteresis relative to the peak: a bright lesion does not leak into its surroundings
    comp &= ev > max(GROW_SPREADS, GROW_OF_PEAK * peak)
    labels, n = ndimage.label(comp)
    if n > 1:
        top = np.unravel_index(int(np.argmax(np.where(comp & interior, ev, -np.inf))), ev.shape)
        comp = labels == labels[top]
    return comp, peak


def _refine(case: Case, comp: np.ndarray, g: int) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Full-resolution tumour mask inside the component's box (see the module docstring)."""
    idx = np.nonzero(comp)
    clo = [max(int(i.min()) - REFINE_REACH, 0) for i in idx]
    chi = [int(i.max()) + 1 + REFINE_REACH for i in idx]
    near = ndimage.binary_dilation(comp[tuple(slice(a, b) for a, b in zip(clo, chi))], iterations=REFINE_REACH)
    core = comp[tuple(slice(a, b) for a, b in zip(clo, chi))]
    for axis in range(3):
        near = np.repeat(near, g, axis=axis)
        core = np.repeat(core, g, axis=axis)
    box = cast(  # zip over the three axes
        tuple[slice, slice, slice], tuple(slice(a * g, min(b * g, n)) for a, b, n in zip(clo, chi, case.shape))
    )
    crop = tuple(slice(0, s.stop - s.start) for s in box)
    near, core = near[crop], core[crop]
    stats = case_stats(case)["flair"]
    z = (case.volumes["flair"][box].astype(np.float32) - np.float32(stats.median)) / np.float32(stats.scale)
    inside = brain_mask(case).region(case, box) & near
    level = float(np.median(z[core & inside])) if (core & inside).any() else 0.0
    bright = fill_holes(inside & (z > REFINE_LEVEL * max(level, 0.0)))
    labels, n = ndimage.label(bright)
    if n:
        touching = np.unique(labels[core & bright])
        bright = np.isin(labels, touching[touching > 0])
    return box, bright


_TUMORS: PerCase[TumorSlice] = PerCase()


def find_tumor(case: Case) -> TumorSlice:
    """Locate the tumour (see the module docstring); computed once per case (`memo`).

    Raises `CaseError` when the "tumour" is most of the brain (garbage input)."""
    return _TUMORS(case, _find)


def _brain_centre_slice(case: Case) -> int:
    brain = brain_mask(case)
    areas = brain.coarse.sum(axis=(0, 1))
    return min(int(areas.argmax()) * brain.step, case.shape[2] - 1)


def _find(case: Case) -> TumorSlice:
    grid, step = detection_grid(case)
    comp, peak = _coarse_tumor(case)
    brain_voxels = float(grid.sum())
    big_enough = comp.sum() >= MIN_TUMOR_FRACTION * brain_voxels
    if not comp.any() or peak < SEED_SPREADS:
        index = _brain_centre_slice(case)
        log.warning(
            "%s: no tumour found (best candidate: peak %.1f spreads, %.2f%% of the brain); using the "
            "largest brain slice %d",
            case.case_id,
            peak,
            100 * comp.sum() / brain_voxels,
            index,
        )
        return TumorSlice(index=index, voxels=0, found=False, score=peak)
    box, mask = _refine(case, comp, step)
    areas = mask.sum(axis=(0, 1))
    if not areas.any():  # the refinement lost it: fall back to the coarse component
        areas = np.repeat(comp.sum(axis=(0, 1)), step)[box[2]]
    # a plateau of near-equal areas is common around the maximum: smoothing the profile over the
    # neighbouring slices keeps a few stray voxels from moving the choice
    profile = np.convolve(areas.astype(np.float64), [0.25, 0.5, 0.25], mode="same")
    index = int(box[2].start + int(profile.argmax()))
    if peak < FOUND_SPREADS or not big_enough:
        log.warning(
            "%s: no confident tumour (best candidate: peak %.1f spreads, found at >= %.1f; %.2f%% of the "
            "brain, found at >= %.2f%%); using its slice %d",
            case.case_id,
            peak,
            FOUND_SPREADS,
            100 * comp.sum() / brain_voxels,
            100 * MIN_TUMOR_FRACTION,
            index,
        )
        return TumorSlice(index=index, voxels=0, found=False, score=peak, box=box, box_mask=mask, possible=True)
    fraction = float(mask.sum()) / (brain_voxels * step**3)
    if fraction > MOST_OF_BRAIN_REFUSE:
        raise CaseError(
            str(case.paths.get("flair", case.case_id)),
            f"the detected 'tumour' covers {100 * fraction:.0f} % of the brain (expected at most "
            f"{100 * MOST_OF_BRAIN_REFUSE:.0f} %): the brain mask or the intensities are broken",
        )
    return TumorSlice(
        index=index, voxels=int(mask.sum()), found=True, score=peak, box=box, box_mask=mask, brain_fraction=fraction
    )


def tumor_mask(case: Case) -> np.ndarray:
    """bool [x, y, z]: the detected tumour at full resolution (all False when none was found), for
    drawing its outline."""
    return find_tumor(case).mask(case)


def tumor_warnings(case: Case, tumor: TumorSlice) -> list[QualityWarning]:
    """`no-tumour` and `tumour-most-of-brain` warnings for a detection result."""
    if tumor.possible:
        return [
            QualityWarning(
                "tumour-uncertain",
                f"{case.case_id}: no confident FLAIR/T2-hyperintense lesion (evidence {tumor.score:.1f}, "
                f"needs {FOUND_SPREADS:.1f}); slice {tumor.index} shows the most suspicious region",
            )
        ]
    if not tumor.found:
        return [
            QualityWarning(
                "no-tumour",
                f"{case.case_id}: no FLAIR/T2-hyperintense lesion found; slice {tumor.index} is the brain's centre",
            )
        ]
    if tumor.brain_fraction > MOST_OF_BRAIN_WARN:
        return [
            QualityWarning(
                "tumour-most-of-brain",
                f"{case.case_id}: the detected tumour covers {100 * tumor.brain_fraction:.0f} % "
                "of the brain; check the input",
            )
        ]
    return []


def max_tumor_slice(case: Case, require: bool = False) -> int:
    """Axial index (canonical RAS grid, `volume[:, :, k]`) of the slice with the largest tumour area.

    With `require=True`, raises `NoTumorFoundError` instead of falling back to the brain's centre.
    """
    tumor = find_tumor(case)
    if require and not tumor.found:
        raise NoTumorFoundError(
            case.case_id,
            "no tumour found: no FLAIR/T2-hyperintense lesion of at least "
            f"{100 * MIN_TUMOR_FRACTION:.2f}% of the brain volume",
        )
    return tumor.index
