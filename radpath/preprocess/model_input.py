"""The model input: the four sequences at one axial slice in two views, stacked as channels, 224 x 224.

The prototype glued the four slices side by side and squashed the strip to 224 x 224 x 3, which
distorts the anatomy 4:1 and mixes sequences in one channel. Here each sequence is a channel, the
slice is cut to a square (the same square for every slice of the case, so neighbouring slices line
up) and resized with one scale factor: no distortion. Two views (`contract.model_io.VIEWS`):

- "brain": the brain's in-plane bounding box padded to a square: where the tumour is, its size
  relative to the brain, the midline;
- "tumour": a square around the found tumour's in-plane extent (TUMOUR_VIEW_MARGIN times it, at
  least TUMOUR_VIEW_MIN_SHARE of the brain view). In the brain view a glioma spans 30-70 of the 224 pixels and the
  network's stride-32 features see it in a few cells; here it fills most of the view, so its parts
  (enhancing rim, necrosis, oedema, T2-FLAIR mismatch, calcification) are what the network reads.
  Without a confident tumour the view zooms onto the best candidate, else onto the brain's centre
  (such cases are referred anyway).

Output contract: float32 [224, 224, 8], channels (flair, t1, t1ce, t2) of the brain view then of the
tumour view, robust z-scores (see `normalize`), background (outside `preprocess.brain_mask`)
exactly 0. Rows run anterior -> posterior, columns patient right -> left (radiological display
convention) in both views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from radpath.contract.model_io import IMAGE_SIZE as SIZE
from radpath.contract.model_io import VIEWS

from .brain_mask import brain_mask
from .case import SEQUENCES, Case
from .memo import PerCase
from .normalize import case_stats, normalize
from .tumor_slice import find_tumor

CHANNELS = len(SEQUENCES)
MARGIN = 4
"""Voxels of background kept around the brain's bounding box."""
TUMOUR_VIEW_MARGIN = 1.5
"""Side of the tumour view / the tumour's larger in-plane extent: the tumour and a rim of brain around it."""
TUMOUR_VIEW_MIN_SHARE = 0.35
"""Smallest side of the tumour view / the brain view's side (about 64 mm in an adult brain): a small
lesion is zoomed at most about 3x, and the view keeps some brain around it. Relative to the brain,
not in mm, so a scaled-down test brain gets the same views."""

Square = tuple[int, int, int]
"""(x0, y0, side) of an in-plane square, in voxels."""

_SQUARES: PerCase[Square] = PerCase()
_TUMOUR_SQUARES: PerCase[Square] = PerCase()


def brain_square(case: Case) -> tuple[int, int, int]:
    """(x0, y0, side): the square in-plane crop, centred on the brain, that every slice uses."""
    return _SQUARES(case, _brain_square)


def _brain_square(case: Case) -> tuple[int, int, int]:
    brain = brain_mask(case)
    g = brain.step
    footprint: np.ndarray = np.any(brain.coarse, axis=2)
    xs = np.nonzero(footprint.any(axis=1))[0] * g
    ys = np.nonzero(footprint.any(axis=0))[0] * g
    side = int(max(xs[-1] - xs[0], ys[-1] - ys[0])) + g + 2 * MARGIN
    cx, cy = (xs[0] + xs[-1]) / 2, (ys[0] + ys[-1]) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def tumour_square(case: Case) -> Square:
    """(x0, y0, side): the square in-plane crop of the tumour view, the same for every slice."""
    return _TUMOUR_SQUARES(case, _tumour_square)


def _tumour_square(case: Case) -> Square:
    bx0, by0, bside = brain_square(case)
    tumor = find_tumor(case)
    if tumor.box_mask.any():
        footprint: np.ndarray = np.any(tumor.box_mask, axis=2)
        xs = np.nonzero(footprint.any(axis=1))[0] + tumor.box[0].start
        ys = np.nonzero(footprint.any(axis=0))[0] + tumor.box[1].start
        cx, cy = (xs[0] + xs[-1] + 1) / 2, (ys[0] + ys[-1] + 1) / 2
        extent = max(xs[-1] - xs[0], ys[-1] - ys[0]) + 1
        side = int(round(min(max(TUMOUR_VIEW_MARGIN * extent, TUMOUR_VIEW_MIN_SHARE * bside), bside)))
    else:  # nothing to zoom onto: the brain's centre at twice the brain view's scale
        cx, cy = bx0 + bside / 2, by0 + bside / 2
        side = max(bside // 2, 1)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def view_square(case: Case, view: str) -> Square:
    """The in-plane square of `view` (one of `contract.model_io.VIEWS`) for `case`."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: expected one of {', '.join(VIEWS)}")
    return brain_square(case) if view == "brain" else tumour_square(case)


def _square(plane: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Cut [x0:x0+side, y0:y0+side] out of `plane`, padding with 0 where it leaves the grid."""
    out = np.zeros((side, side), dtype=plane.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, plane.shape[0]), min(y0 + side, plane.shape[1])
    out[sx0 - x0 : sx1 - x0, sy0 - y0 : sy1 - y0] = plane[sx0:sx1, sy0:sy1]
    return out


def model_input(case: Case, slice_index: int | None = None) -> np.ndarray:
    """float32 [224, 224, 8] for axial slice `slice_index` (None: the max-tumour slice): both views."""
    if slice_index is None:
        slice_index = find_tumor(case).index
    nz = case.shape[2]
    if not 0 <= slice_index < nz:
        raise IndexError(f"slice_index {slice_index} is outside 0..{nz - 1} for case {case.case_id}")
    stats = case_stats(case)
    brain = brain_mask(case).plane(case, slice_index)
    out = np.empty((SIZE, SIZE, len(VIEWS) * CHANNELS), dtype=np.float32)
    for c, name in enumerate(SEQUENCES):
        plane = normalize(case.volumes[name][:, :, slice_index], stats[name], brain)
        for v, view in enumerate(VIEWS):
            out[:, :, v * CHANNELS + c] = to_model_plane(case, plane, view=view)
    return out


def to_model_plane(case: Case, plane: np.ndarray, order: int = 1, view: str = "brain") -> np.ndarray:
    """float32 [224, 224]: an axial plane [x, y] of `case` cropped, zoomed and oriented exactly as the
    model input's `view` is (its square, one scale factor; rows anterior->posterior, columns patient
    right->left). `order=0` for masks (the tumour outline drawn over an explanation)."""
    x0, y0, side = view_square(case, view)
    square = _square(np.asarray(plane, np.float32), x0, y0, side)
    resized: np.ndarray = ndimage.zoom(square, SIZE / side, order=order, grid_mode=True, mode="grid-constant")
    return resized[::-1, ::-1].T[:SIZE, :SIZE]


def view_to_brain_view(case: Case, image: np.ndarray, view: str) -> np.ndarray:
    """float32 [224, 224]: a [224, 224] picture in `view`'s model plane (an attribution map) drawn
    where it lies in the brain view's plane (0 outside it), so the views' maps can be added."""
    if view == "brain":
        return np.asarray(image, np.float32)
    bx0, by0, bside = brain_square(case)
    tx0, ty0, tside = view_square(case, view)
    # model plane (row, col) -> in-plane voxel (x, y): x = x0 + side - (col + 0.5) * side / SIZE, etc.
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    x = bx0 + bside - cols * bside / SIZE
    y = by0 + bside - rows * bside / SIZE
    src_col = (tx0 + tside - x) * SIZE / tside - 0.5
    src_row = (ty0 + tside - y) * SIZE / tside - 0.5
    out: np.ndarray = ndimage.map_coordinates(np.asarray(image, np.float32), [src_row, src_col], order=1, cval=0.0)
    return out.astype(np.float32)


def model_inputs(case: Case, offsets: Sequence[int] = (-2, -1, 0, 1, 2), slice_index: int | None = None) -> np.ndarray:
    """float32 [len(offsets), 224, 224, 8]: the slice and its neighbours, for augmentation and
    test-time averaging. Offsets that leave the volume are clamped to its first/last slice."""
    if slice_index is None:
        slice_index = find_tumor(case).index
    nz = case.shape[2]
    return np.stack([model_input(case, min(max(slice_index + o, 0), nz - 1)) for o in offsets])
