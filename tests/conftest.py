"""Shared fixtures: small synthetic cohorts written once per session, and NIfTI helpers.

Small volumes keep the suite fast on 2 cores; 96 x 96 x 62 keeps the real 240:155 proportions so
tumour sizes relative to the brain stay realistic.
"""

from __future__ import annotations

import os

# two CPU devices for pmap tests; must be set before anything imports jax
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_seconds=900"
)  # a busy CI machine can starve one device past the 40 s default
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radpath.synth.cohort import write_synthetic_cohort

SMALL_SHAPE = (96, 96, 62)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """12 synthetic cases, 96 x 96 x 62, seed 11 (do not modify: shared by many tests)."""
    root = tmp_path_factory.mktemp("cohort")
    write_synthetic_cohort(root, cases=12, seed=11, shape=SMALL_SHAPE, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def case_dir(small_cohort) -> Path:
    return sorted((small_cohort / "Radiology").iterdir())[0]


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    nib.save(img, str(path))
    return path


def copy_case(src: Path, dst_root: Path, case_id: str | None = None) -> Path:
    """Copy a case folder (renaming files to `case_id`) so a test can break it."""
    case_id = case_id or src.name
    dst = dst_root / case_id
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name.replace(src.name, case_id)).write_bytes(f.read_bytes())
    return dst
