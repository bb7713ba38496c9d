"""The `Case` value: one patient's four co-registered sequences plus metadata.

Array contract (written once, here): every volume is a numpy array of shape [x, y, z] in the
canonical RAS+ voxel orientation (axis 0 left->right, axis 1 posterior->anterior, axis 2
inferior->superior), so "axial slice k" is `volume[:, :, k]` for every file whatever orientation it
was stored in. Volumes keep the dtype they were stored with (usually int16): conversion to float32
happens only for the few slices that become model input, which is what keeps preprocessing cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import numpy as np

SEQUENCES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
"""Sequence names as in the CPM-RadPath file names; also the channel order of the model input."""

CLASSES: tuple[str, ...] = ("A", "O", "G")
"""Class order of every probability vector in the project (model output, CSV columns)."""


@dataclass(frozen=True, eq=False)
class Case:
    """Four volumes of one patient, in canonical orientation, and what is known about the patient.

    `case_id` is for bookkeeping and reports only: it is never a model feature (its site prefix
    nearly gives the class away).
    """

    case_id: str
    volumes: Mapping[str, np.ndarray]
    affine: np.ndarray
    paths: Mapping[str, Path] = field(default_factory=dict)
    age_days: float | None = None
    label: str | None = None
    source_orientation: str = "RAS"
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    """Memo of derived values (intensity statistics, tumour mask) shared by the preprocessing steps."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.volumes[SEQUENCES[0]].shape)  # type: ignore[return-value]

    def memo(self, key: str, compute):
        """`compute()` once per case; later calls return the stored value."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def nonzero_any(self, region: tuple = ()) -> np.ndarray:
        """bool: voxels of `volume[region]` that are non-zero in any of the four sequences."""
        mask = self.volumes[SEQUENCES[0]][region] != 0
        for name in SEQUENCES[1:]:
            mask |= self.volumes[name][region] != 0
        return mask

    @cached_property
    def brain_mask(self) -> np.ndarray:
        """bool [x, y, z]: voxels non-zero in any sequence.

        BraTS files are skull-stripped with background exactly 0; the brain is "non-zero", not
        "positive" (bias-field correction leaves some slightly negative voxels), and the four
        sequences' masks differ by a few hundred voxels, hence the union.
        """
        return self.nonzero_any()
