"""The home page's brain: a synthetic volume made by `synth` at first start (never patient data)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEMO_SHAPE = (120, 120, 78)
"""Half the BraTS grid: enough for the 3D view, a ~1 MB download, a few seconds to make."""


def ensure_demo_volume(folder: Path, shape: tuple[int, int, int] = DEMO_SHAPE) -> Path:
    """folder/brain.nii.gz (the T1ce of synthetic case 0), written once, atomically."""
    path = Path(folder) / "brain.nii.gz"
    if path.is_file():
        return path
    from radpath.synth.cohort import plan_cohort, save_ras, synthesize_case

    folder.mkdir(parents=True, exist_ok=True)
    plan = plan_cohort(3, seed=7)[0]
    volumes, _, _ = synthesize_case(plan, seed=7, shape=shape, style="brats")  # background exactly 0: a clean render
    tmp = folder / f".brain.{os.getpid()}.nii.gz"
    save_ras(volumes["t1ce"], tmp)
    os.replace(tmp, path)
    log.info("wrote the synthetic demo brain %s", path)
    return path
