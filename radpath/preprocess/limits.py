"""Resource limits of the reader, and the finiteness rule every model input obeys.

A hostile or corrupt file must be refused *before* it costs memory: a 2 MB `.nii.gz` can declare
gigabytes of voxels, and a header extension can claim a gigabyte. The limits below are checked from
the header alone (see `preprocess.nifti_header`), before any voxel or extension byte is read.
Defaults fit a real BraTS case (240 x 240 x 155 voxels, 4 sequences; 71 MB per float64 volume,
285 MB per float64 case) with room; raise them with `ReadLimits(...)` in the Python API or with the
environment variables named below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from radpath.contract.errors import CaseError

MIB = 1024 * 1024


def _env_mib(name: str, default_mib: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default_mib * MIB
    try:
        value = int(raw)
    except ValueError:
        raise CaseError(name, f"must be a whole number of MiB, got {raw!r}") from None
    if value <= 0:
        raise CaseError(name, f"must be a positive number of MiB, got {value}")
    return value * MIB


@dataclass(frozen=True)
class ReadLimits:
    """What one case may cost. Bytes are decoded (in-memory) bytes, not file bytes."""

    max_volume_bytes: int = 256 * MIB
    """One sequence: 3.6x a real float64 volume, 14x a real int16 one."""
    max_case_bytes: int = 512 * MIB
    """All four sequences together: 1.8x a real float64 case."""
    max_extension_bytes: int = 16 * MIB
    """Header extensions (between the 352-byte header and the voxels), skipped unread."""
    max_abs_intensity: float = 1e20
    """Largest |voxel| after scl_slope/scl_inter: far above any scanner scale, far below float32's
    3.4e38, so normalisation in float32 can never overflow to inf/NaN."""

    @classmethod
    def from_env(cls) -> ReadLimits:
        """Defaults, overridden by RADPATH_MAX_VOLUME_MB / RADPATH_MAX_CASE_MB / RADPATH_MAX_EXTENSION_MB."""
        d = cls()
        return cls(
            max_volume_bytes=_env_mib("RADPATH_MAX_VOLUME_MB", d.max_volume_bytes // MIB),
            max_case_bytes=_env_mib("RADPATH_MAX_CASE_MB", d.max_case_bytes // MIB),
            max_extension_bytes=_env_mib("RADPATH_MAX_EXTENSION_MB", d.max_extension_bytes // MIB),
        )


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # unreachable


def check_finite(array: np.ndarray, where: str, what: str = "model input") -> None:
    """Raise CaseError when `array` holds NaN or inf: a non-finite model input would give NaN
    probabilities that look like an answer (`A [A nan O nan G nan]`)."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise CaseError(where, f"{what} holds {bad} NaN or infinite values")
