"""A native-space volume as read from DICOM or NIfTI, and the move to SimpleITK's geometry.

Array contract: `Volume.data` is float32 [i, j, k] (k = slice index) and `Volume.affine` maps voxel
indices to RAS+ millimetres (the NIfTI convention). DICOM is LPS+; the conversion happens once,
where the DICOM geometry is read (`dicom_volume`), so every later stage speaks one convention.
SimpleITK (ITK) speaks LPS+ with an orthonormal direction matrix: `to_sitk` flips the first two
world axes and splits the affine into spacing, direction and origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORTHOGONAL_TOL = 1e-3
"""Largest |cos| between two voxel axes still called orthogonal (ITK cannot represent shears)."""


@dataclass(frozen=True, eq=False)
class Volume:
    """One series in its native space: the voxels, their geometry and what was read about them."""

    name: str
    """What a person calls it in messages: 'series 5 "MRHR FLAIR AX"' or a file name."""
    data: np.ndarray
    affine: np.ndarray
    facts: dict = field(default_factory=dict)
    """Acquisition facts kept for the report (no patient data): description, TR, TE, ..."""

    @property
    def spacing(self) -> tuple[float, float, float]:
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(s[0]), float(s[1]), float(s[2])


def to_sitk(vol: Volume) -> sitk.Image:
    """The volume as a float32 SimpleITK image in the same physical place (LPS world)."""
    lps = LPS_FROM_RAS @ vol.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    gram = np.abs(direction.T @ direction - np.eye(3))
    if gram.max() > ORTHOGONAL_TOL:
        raise ValueError(f"{vol.name}: voxel axes are not orthogonal (sheared grid); ITK cannot represent it")
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(vol.data, (2, 1, 0)), dtype=np.float32))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(d) for d in direction.ravel()])
    img.SetOrigin([float(o) for o in lps[:3, 3]])
    return img


def sitk_to_array(img: sitk.Image) -> np.ndarray:
    """[i, j, k] array of a SimpleITK image (whose own array is [k, j, i])."""
    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))


def ras_affine(img: sitk.Image) -> np.ndarray:
    """The voxel -> RAS+ affine of a SimpleITK image."""
    d = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    a = np.eye(4)
    a[:3, :3] = d
    a[:3, 3] = img.GetOrigin()
    return LPS_FROM_RAS @ a
