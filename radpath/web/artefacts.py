"""What a result page shows besides numbers: the four max-tumour slices with the tumour outline
(PNG) and the tumour mask as a NIfTI overlay for the 3D viewer.

Slices are shown as every picture of the project is (`client.picture.radiological`): radiological,
as a PACS shows them (patient's right on the image's left, anterior up), labelled R / L, from the
canonical RAS grid of `preprocess.case`.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from radpath.client.picture import label_sides, png_bytes, radiological
from radpath.contract.model_io import CHANNELS as SEQUENCES
from radpath.preprocess import Case

OUTLINE_RGB = (255, 40, 40)


def slice_image(volume_plane: np.ndarray, mask_plane: np.ndarray | None) -> np.ndarray:
    """uint8 RGB of one plane, windowed to the brain's 1st-99th percentile, tumour outline in red, R / L."""
    plane = volume_plane.astype(np.float32)
    inside = plane[plane != 0]
    lo, hi = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
    gray = np.clip((plane - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    rgb = np.repeat(radiological(gray).astype(np.uint8)[..., None], 3, axis=2)
    if mask_plane is not None and mask_plane.any():
        m = radiological(mask_plane)
        outline = m & ~ndimage.binary_erosion(m)
        outline = ndimage.binary_dilation(outline) if max(m.shape) > 128 else outline
        rgb[outline] = OUTLINE_RGB
    return label_sides(rgb)


def write_artefacts(case: Case, slice_index: int, mask: np.ndarray, out: Path) -> dict:
    """Write slice_<seq>.png x 4 and mask.nii.gz into `out`; returns their names."""
    out.mkdir(parents=True, exist_ok=True)
    names = {}
    for seq in SEQUENCES:
        rgb = slice_image(case.volumes[seq][:, :, slice_index], mask[:, :, slice_index])
        (out / f"slice_{seq}.png").write_bytes(png_bytes(rgb))
        names[seq] = f"slice_{seq}.png"
    img = nib.Nifti1Image(mask.astype(np.uint8), case.affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(out / "mask.nii.gz"))
    names["mask"] = "mask.nii.gz"
    return names
