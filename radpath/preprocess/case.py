"""The `Case` value: one patient's four co-registered sequences plus metadata.

Array contract (written once, here): every volume is a numpy array of shape [x, y, z] in the
canonical RAS+ voxel orientation (axis 0 left->right, axis 1 posterior->anterior, axis 2
inferior->superior), so "axial slice k" is `volume[:, :, k]` for every file whatever orientation it
was stored in. Volumes keep the dtype they were stored with (usually int16): conversion to float32
happens only for the few slices that become model input, which is what keeps preprocessing cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radpath.contract.model_io import CHANNELS as SEQUENCES

__all__ = ["SEQUENCES", "Case"]  # SEQUENCES is re-exported: the steps import it from here


@dataclass(frozen=True, eq=False)
class Case:
    """Four volumes of one patient, in canonical orientation, and what is known about the patient.

    `case_id` is for bookkeeping and reports only: it is never a model feature (its site prefix
    nearly gives the class away).

    A plain value: it knows nothing of the steps that read it. What a step derives from a case (the
    brain mask, intensity statistics, the tumour) is kept by that step, once per case object
    (`preprocess.memo`), so `find_tumor` then `model_input` on one case do the work once.
    """

    case_id: str
    volumes: Mapping[str, np.ndarray]
    affine: np.ndarray
    paths: Mapping[str, Path] = field(default_factory=dict)
    age_days: float | None = None
    label: str | None = None
    source_orientation: str = "RAS"

    @property
    def shape(self) -> tuple[int, int, int]:
        x, y, z = self.volumes[SEQUENCES[0]].shape
        return int(x), int(y), int(z)

    def nonzero_any(self, region: tuple[slice, ...] = ()) -> np.ndarray:
        """bool: voxels of `volume[region]` that are non-zero in any of the four sequences."""
        mask: np.ndarray = self.volumes[SEQUENCES[0]][region] != 0
        for name in SEQUENCES[1:]:
            mask |= self.volumes[name][region] != 0
        return mask
