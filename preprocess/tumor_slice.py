"""Find the tumour and the axial slice where it is largest.

The prototype counted FLAIR voxels above a fixed 450: on files with arbitrary scanner scale that
picks the largest *brain* slice in about a third of cases. Here the tumour is what is hyperintense
on FLAIR *and* T2 relative to this brain's own distribution (robust z-scores, so scale-free): CSF is
bright on T2 but dark on FLAIR and drops out; oedema and solid tumour are bright on both. The
candidate voxels are grouped in 3-D connected components; among those holding a clearly
hyperintense seed, the one with the most hyperintensity (sum over its voxels of how far FLAIR
exceeds the cut-off) is the tumour: grey matter made bright by a bias field can be large but
is barely over the cut-off, a tumour is far over it, holes are filled (necrosis,
and the FLAIR-dark centre of a T2-FLAIR mismatch lesion), and the axial slice with the largest area
of that component wins.

Speed: on BraTS-sized volumes detection runs on a 1-in-3 grid (27x fewer voxels), then the tumour's bounding box alone is
refined at full resolution.

No tumour: when the largest component is smaller than `MIN_TUMOR_FRACTION` of the brain, the
result has `found=False`, `voxels=0` and the slice with the largest brain area (the brain's
centre), and a warning is logged; callers that must not guess pass `require=True` and get
`NoTumorFoundError`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .case import Case
from .errors import CaseError
from .normalize import case_stats, coarse_brain, grid_step

log = logging.getLogger(__name__)

FLAIR_Z = 3.0
"""FLAIR robust z above which a voxel is hyperintense (normal grey matter sits at 1-2; oedema and
tumour at 4-8)."""
T2_Z = 1.0
"""T2 robust z the same voxel must also exceed (tumour and oedema are T2-bright)."""
SEED_FACTOR = 1.5
"""A component counts only if it holds a voxel 1.5x further out (FLAIR z > 4.5, T2 z > 1.5):
hysteresis, so grey matter made bright by a bias field grows no lesion, while a thin rim or a
small lesion is not erased by a morphological opening."""
EDGE_EROSION = 1
"""Coarse-grid voxels (3 mm) trimmed off the brain edge, where FLAIR is often artificially bright."""
MIN_TUMOR_FRACTION = 0.0005
"""Smallest tumour, as a fraction of brain volume (0.5 ml in a 1.2 l brain), accepted as found."""


class NoTumorFoundError(CaseError):
    """No FLAIR/T2-hyperintense lesion large enough to be a diffuse glioma."""


@dataclass(frozen=True)
class TumorSlice:
    """Where the tumour is: the axial index, the tumour volume in voxels and per-slice areas."""

    index: int
    voxels: int
    found: bool
    areas: np.ndarray  # int [z]: tumour voxels per axial slice (brain voxels when not found)


def _candidates(case: Case, sl: tuple[slice, ...], brain: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Voxels of `case` (restricted to `sl`) hyperintense on FLAIR and T2 by `factor` x the z cut-offs."""
    stats = case_stats(case)
    out = brain.copy()
    for name, z in (("flair", FLAIR_Z * factor), ("t2", T2_Z * factor)):
        volume = case.volumes[name][sl]
        threshold = stats[name].median + z * stats[name].scale
        if volume.dtype.kind in "iu":  # x > t <=> x > floor(t) for integers; avoids a float copy
            threshold = np.floor(threshold)
        out &= volume > threshold
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` plus every background region that does not touch the array's border.

    Same result as `scipy.ndimage.binary_fill_holes` (6-connected background), but one labelling
    pass instead of a dilation iterated to convergence: 10x faster on a tumour's box.
    """
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask
    border = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                             labels[:, -1].ravel(), labels[..., 0].ravel(), labels[..., -1].ravel()])
    outside = np.zeros(n + 1, dtype=bool)
    outside[np.unique(border)] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[labels]


def tumor_mask_coarse(case: Case) -> np.ndarray:
    """bool mask on the coarse (`grid_step`) grid: the main hyperintense component, holes filled."""
    coarse = (slice(None, None, grid_step(case.shape)),) * 3
    brain = ndimage.binary_erosion(coarse_brain(case), iterations=EDGE_EROSION)
    cand = _candidates(case, coarse, brain)
    labels, n = ndimage.label(cand)
    if n == 0:
        return cand
    seeded = np.unique(labels[_candidates(case, coarse, cand, SEED_FACTOR)])
    stats = case_stats(case)["flair"]
    flair_z = (case.volumes["flair"][coarse][cand].astype(np.float32) - stats.median) / stats.scale
    excess = np.clip(flair_z - FLAIR_Z, 0.0, 5.0)
    mass = np.bincount(labels[cand], weights=excess, minlength=n + 1)
    keep = np.zeros(n + 1, dtype=bool)
    keep[seeded] = True
    keep[0] = False
    mass[~keep] = 0
    if not mass.any():
        return np.zeros_like(cand)
    return fill_holes(labels == int(mass.argmax()))


def find_tumor(case: Case) -> TumorSlice:
    """Locate the tumour; see the module docstring for the method and the no-tumour behaviour."""
    def compute() -> TumorSlice:
        g = grid_step(case.shape)
        coarse = tumor_mask_coarse(case)
        brain = coarse_brain(case)
        if coarse.sum() < MIN_TUMOR_FRACTION * brain.sum():
            coarse_areas = brain.sum(axis=(0, 1))
            areas = np.repeat(coarse_areas, g)[: case.shape[2]] * g * g
            index = int(areas.argmax())
            log.warning("%s: no tumour found (no FLAIR/T2-hyperintense lesion of %.2f%% of the brain); "
                        "using the largest brain slice %d", case.case_id, 100 * MIN_TUMOR_FRACTION, index)
            return TumorSlice(index=index, voxels=0, found=False, areas=areas)
        # Refine inside the coarse component's bounding box at full resolution.
        idx = np.nonzero(coarse)
        clo = [max(int(i.min()) - 1, 0) for i in idx]
        chi = [int(i.max()) + 2 for i in idx]
        near = ndimage.binary_dilation(coarse[tuple(slice(a, b) for a, b in zip(clo, chi))])
        for axis in range(3):
            near = np.repeat(near, g, axis=axis)
        box = tuple(slice(a * g, min(b * g, n)) for a, b, n in zip(clo, chi, case.shape))
        near = near[tuple(slice(0, s.stop - s.start) for s in box)]
        mask = fill_holes(_candidates(case, box, case.nonzero_any(box)) & near)
        areas = np.zeros(case.shape[2], dtype=np.int64)
        areas[box[2]] = mask.sum(axis=(0, 1))
        return TumorSlice(index=int(areas.argmax()), voxels=int(mask.sum()), found=True, areas=areas)
    return case.memo("tumor", compute)


def max_tumor_slice(case: Case, require: bool = False) -> int:
    """Axial index (canonical RAS grid, `volume[:, :, k]`) of the slice with the largest tumour area.

    With `require=True`, raises `NoTumorFoundError` instead of falling back to the brain's centre.
    """
    tumor = find_tumor(case)
    if require and not tumor.found:
        raise NoTumorFoundError(case.case_id, "no tumour found: no FLAIR/T2-hyperintense lesion of at least "
                                              f"{100 * MIN_TUMOR_FRACTION:.2f}% of the brain volume")
    return tumor.index
