"""The model input: the four sequences at one axial slice, stacked as channels, 224 x 224.

The prototype glued the four slices side by side and squashed the strip to 224 x 224 x 3, which
distorts the anatomy 4:1 and mixes sequences in one channel. Here each sequence is a channel, the
slice is cropped to the brain's in-plane bounding box (the same box for every slice of the case, so
neighbouring slices line up), padded to a square and resized with one scale factor: no distortion.

Output contract: float32 [224, 224, 4], channels (flair, t1, t1ce, t2), robust z-scores (see
`normalize`), background (outside `preprocess.brain_mask`) exactly 0. Rows run anterior ->
posterior, columns patient right -> left (radiological display convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from radpath.contract.model_io import IMAGE_SIZE as SIZE

from .brain_mask import brain_mask
from .case import SEQUENCES, Case
from .memo import PerCase
from .normalize import case_stats, normalize
from .tumor_slice import find_tumor

CHANNELS = len(SEQUENCES)
MARGIN = 4
"""Voxels of background kept around the brain's bounding box."""


_SQUARES: PerCase[tuple[int, int, int]] = PerCase()


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


def _square(plane: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Cut [x0:x0+side, y0:y0+side] out of `plane`, padding with 0 where it leaves the grid."""
    out = np.zeros((side, side), dtype=plane.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, plane.shape[0]), min(y0 + side, plane.shape[1])
    out[sx0 - x0 : sx1 - x0, sy0 - y0 : sy1 - y0] = plane[sx0:sx1, sy0:sy1]
    return out


def model_input(case: Case, slice_index: int | None = None) -> np.ndarray:
    """float32 [224, 224, 4] for axial slice `slice_index` (None: the max-tumour slice)."""
    if slice_index is None:
        slice_index = find_tumor(case).index
    nz = case.shape[2]
    if not 0 <= slice_index < nz:
        raise IndexError(f"slice_index {slice_index} is outside 0..{nz - 1} for case {case.case_id}")
    stats = case_stats(case)
    brain = brain_mask(case).plane(case, slice_index)
    out = np.empty((SIZE, SIZE, CHANNELS), dtype=np.float32)
    for c, name in enumerate(SEQUENCES):
        out[:, :, c] = to_model_plane(case, normalize(case.volumes[name][:, :, slice_index], stats[name], brain))
    return out


def to_model_plane(case: Case, plane: np.ndarray, order: int = 1) -> np.ndarray:
    """float32 [224, 224]: an axial plane [x, y] of `case` cropped, zoomed and oriented exactly as the
    model input is (the brain's square, one scale factor; rows anterior->posterior, columns patient
    right->left). `order=0` for masks (the tumour outline drawn over an explanation)."""
    x0, y0, side = brain_square(case)
    square = _square(np.asarray(plane, np.float32), x0, y0, side)
    resized: np.ndarray = ndimage.zoom(square, SIZE / side, order=order, grid_mode=True, mode="grid-constant")
    return resized[::-1, ::-1].T[:SIZE, :SIZE]


def model_inputs(case: Case, offsets: Sequence[int] = (-2, -1, 0, 1, 2), slice_index: int | None = None) -> np.ndarray:
    """float32 [len(offsets), 224, 224, 4]: the slice and its neighbours, for augmentation and
    test-time averaging. Offsets that leave the volume are clamped to its first/last slice."""
    if slice_index is None:
        slice_index = find_tumor(case).index
    nz = case.shape[2]
    return np.stack([model_input(case, min(max(slice_index + o, 0), nz - 1)) for o in offsets])
