"""Read and check one case: four NIfTI files -> a `Case` in canonical (RAS+) orientation.

Checks, in the order they are cheap: the four files exist (`.nii.gz` or `.nii`); the header declares
a sane 3-D volume (rejected *before* any voxel is read, so a corrupt header claiming 10^12 voxels
cannot exhaust memory); the data decompresses completely; values are finite and not constant; the
four volumes share shape and affine. Every failure raises `CaseError` naming the file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np
from nibabel import orientations as orient

from .case import SEQUENCES, Case
from .errors import CaseError

log = logging.getLogger(__name__)

MAX_AXIS_VOXELS = 1024
"""Largest accepted size of one axis; BraTS volumes are 240 x 240 x 155."""
MAX_TOTAL_VOXELS = 256 * 1024 * 1024
MIN_AXIS_VOXELS = 8
VOXEL_SIZE_RANGE_MM = (0.1, 10.0)
AFFINE_ATOL = 1e-2
"""Tolerance (mm, and unitless for the rotation part) when comparing the four affines."""

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def find_sequence_files(case_dir: Path, case_id: str | None = None) -> dict[str, Path]:
    """Paths of `<ID>_{flair,t1,t1ce,t2}.nii[.gz]` inside `case_dir` (ID defaults to the folder name)."""
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise CaseError(case_dir, "is not a folder (expected Radiology/<ID>/ holding <ID>_flair.nii.gz, ...)")
    case_id = case_id or case_dir.name
    found: dict[str, Path] = {}
    for name in SEQUENCES:
        candidates = [case_dir / f"{case_id}_{name}{suffix}" for suffix in NIFTI_SUFFIXES]
        present = [p for p in candidates if p.is_file()]
        if len(present) > 1:
            raise CaseError(case_dir, f"both {present[0].name} and {present[1].name} exist; keep one")
        if not present:
            listing = ", ".join(sorted(p.name for p in case_dir.iterdir())) or "nothing"
            raise CaseError(case_dir, f"missing {case_id}_{name}.nii.gz (the folder holds: {listing})")
        found[name] = present[0]
    return found


def _check_header(path: Path, img: nib.Nifti1Image) -> None:
    shape = tuple(int(s) for s in img.header.get_data_shape())
    if len(shape) != 3:
        raise CaseError(path, f"expected a 3-D volume, the header declares {len(shape)}-D shape {shape}")
    if any(s < MIN_AXIS_VOXELS or s > MAX_AXIS_VOXELS for s in shape):
        raise CaseError(path, f"declared shape {shape} is not a plausible MRI volume "
                              f"(each axis must be {MIN_AXIS_VOXELS}..{MAX_AXIS_VOXELS} voxels)")
    if int(np.prod(shape, dtype=np.int64)) > MAX_TOTAL_VOXELS:
        raise CaseError(path, f"declared shape {shape} has more than {MAX_TOTAL_VOXELS} voxels")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    lo, hi = VOXEL_SIZE_RANGE_MM
    if not all(lo <= z <= hi for z in zooms):
        raise CaseError(path, f"declared voxel size {zooms} mm is outside {lo}..{hi} mm")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-6:
        raise CaseError(path, "the affine (sform/qform) is not a valid, invertible transform")


def read_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One checked volume in stored orientation: (array [i, j, k] in its stored dtype, affine 4x4)."""
    path = Path(path)
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise CaseError(path, "file not found") from None
    except Exception as exc:  # nibabel raises several types for a bad header
        raise CaseError(path, f"not a readable NIfTI file ({exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise CaseError(path, f"expected NIfTI, got {type(img).__name__}")
    _check_header(path, img)
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, OSError, ValueError, MemoryError) as exc:
        raise CaseError(path, f"the voxel data cannot be read completely; is the file truncated? ({exc})") from None
    except Exception as exc:  # zlib.error and friends
        raise CaseError(path, f"the voxel data cannot be decompressed ({type(exc).__name__}: {exc})") from None
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise CaseError(path, f"{bad} voxels are NaN or infinite")
    if data.dtype.kind not in "fiub":
        raise CaseError(path, f"unsupported voxel type {data.dtype}")
    lo, hi = data.min(), data.max()
    if lo == hi:
        raise CaseError(path, f"the image is constant (every voxel is {lo}); expected a skull-stripped MRI")
    return data, np.asarray(img.affine, dtype=np.float64)


def _to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Reorient (flips and axis swaps only, no resampling) to RAS+; returns the source axis codes too."""
    source = orient.io_orientation(affine)
    codes = "".join(orient.aff2axcodes(affine))
    transform = orient.ornt_transform(source, orient.axcodes2ornt("RAS"))
    if np.array_equal(transform, orient.axcodes2ornt("RAS")):
        return data, affine, codes
    out = orient.apply_orientation(data, transform)
    new_affine = affine @ orient.inv_ornt_aff(transform, data.shape)
    return out, new_affine, codes


def load_case(
    source: str | Path | Mapping[str, str | Path],
    case_id: str | None = None,
    age_days: float | None = None,
    label: str | None = None,
) -> Case:
    """Load and check one case.

    `source` is either a case folder (`Radiology/<ID>/`, ID = folder name unless `case_id` is given)
    or a mapping with the four keys flair, t1, t1ce, t2 to explicit file paths.
    Returns a `Case` whose volumes are [x, y, z] arrays in RAS+ orientation (see `preprocess.case`).
    Raises `CaseError` naming the offending file.
    """
    if isinstance(source, Mapping):
        unknown = set(source) - set(SEQUENCES)
        missing = [s for s in SEQUENCES if s not in source]
        if unknown or missing:
            raise CaseError("input", f"need exactly the sequences {', '.join(SEQUENCES)}; "
                                     f"missing {missing or 'none'}, unknown {sorted(unknown) or 'none'}")
        paths = {name: Path(source[name]) for name in SEQUENCES}
        case_id = case_id or _common_id(paths)
    else:
        case_dir = Path(source)
        case_id = case_id or case_dir.name
        paths = find_sequence_files(case_dir, case_id)

    volumes: dict[str, np.ndarray] = {}
    ref_name, ref_affine, ref_shape = "", None, None
    orientation = "RAS"
    for name in SEQUENCES:
        data, affine = read_volume(paths[name])
        if ref_affine is None:
            ref_name, ref_affine, ref_shape = name, affine, data.shape
        else:
            if data.shape != ref_shape:
                raise CaseError(paths[name], f"shape {data.shape} differs from {ref_name}'s {ref_shape}; "
                                             "the four sequences must be co-registered on one grid")
            if not np.allclose(affine, ref_affine, atol=AFFINE_ATOL):
                diff = float(np.abs(affine - ref_affine).max())
                raise CaseError(paths[name], f"affine differs from {ref_name}'s by up to {diff:.3g} "
                                             f"(tolerance {AFFINE_ATOL}); the sequences are not co-registered")
        volumes[name], canonical_affine, orientation = _to_canonical(data, affine)
    return Case(case_id=case_id, volumes=volumes, affine=canonical_affine, paths=paths,
                age_days=age_days, label=label, source_orientation=orientation)


def _common_id(paths: Mapping[str, Path]) -> str:
    """Case ID from explicit files: the FLAIR file name without `_flair.nii[.gz]`."""
    stem = paths["flair"].name
    for suffix in NIFTI_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem[: -len("_flair")] if stem.endswith("_flair") else stem
