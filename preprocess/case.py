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
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:
    from .brain_mask import BrainMask
    from .normalize import IntensityStats
    from .tumor_slice import TumorSlice

from contract.model_io import CHANNELS as SEQUENCES  # noqa: E402  sequence names = the model input's channel order
from contract.model_io import CLASSES  # noqa: E402,F401  class order of every probability vector


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
    derived: Derived = field(default_factory=lambda: Derived(), repr=False, compare=False)
    """What the preprocessing steps derived from the volumes, computed once (see `Derived`)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.volumes[SEQUENCES[0]].shape)  # type: ignore[return-value]

    def nonzero_any(self, region: tuple = ()) -> np.ndarray:
        """bool: voxels of `volume[region]` that are non-zero in any of the four sequences."""
        mask = self.volumes[SEQUENCES[0]][region] != 0
        for name in SEQUENCES[1:]:
            mask |= self.volumes[name][region] != 0
        return mask

    @cached_property
    def brain_mask(self) -> np.ndarray:
        """bool [x, y, z]: the full-resolution brain mask (see `preprocess.brain_mask`: "non-zero in
        any sequence" on BraTS files, estimated from the intensities when the background is not
        exactly zero). Costs more than the whole pipeline: the pipeline itself uses the coarse grid."""
        from .brain_mask import brain_mask
        return brain_mask(self).full(self)


@dataclass
class Derived:
    """Typed slots for the results of the preprocessing steps, each filled once by the step that owns
    it (so `find_tumor` then `model_input` on one case do the work once). The steps read each other's
    results through these functions, never through the slots directly:

    - `brain`: `preprocess.brain_mask.brain_mask(case)`
    - `stats`: `preprocess.normalize.case_stats(case)`
    - `tumor`: `preprocess.tumor_slice.find_tumor(case)`
    - `square`: `preprocess.model_input.brain_square(case)`
    """

    brain: BrainMask | None = None
    stats: dict[str, IntensityStats] | None = None
    tumor: TumorSlice | None = None
    square: tuple[int, int, int] | None = None
