"""`prepare_study`: a DICOM study (folder or zip) or four native NIfTI -> a case in the release layout.

Stages (each timed in the report, each announced to `progress`):
  read      find the series (DICOM tags) or the NIfTI files; refuse two patients
  assign    FLAIR / T1 / T1ce / T2, each with its reason (flags override)
  convert   each chosen series -> voxels + geometry (`dicom_volume`, `nifti_input`)
  atlas     T1 onto the SRI24 atlas (affine), so all four land on the BraTS grid
  coregister  FLAIR, T1ce, T2 onto T1 (rigid, same session; judged inside the atlas brain)
  skull     brain mask: the atlas brain carried onto this head (`skull_strip`)
  write     resample each sequence once onto the 240 x 240 x 155 grid, mask, write NIfTI
  qc        the QC picture and the JSON report

Outputs: `OUT/ID/ID_{flair,t1,t1ce,t2}.nii.gz` (release affine, int16 where the input was integer),
`OUT/ID/ID_prepare.json` (series chosen and why, transforms, timings; no patient data) and
`OUT/ID/ID_prepare_qc.png`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from radpath.contract.model_io import CHANNELS as SEQUENCES

from . import register
from .atlas import atlas_brain_mask, atlas_t1
from .dicom_series import check_one_patient, scan_series
from .dicom_volume import read_volume
from .errors import StudyError
from .nifti_input import assign_nifti, nifti_series, read_nifti
from .qc_picture import qc_picture
from .series_roles import assign
from .skull_strip import brain_mask
from .study_input import is_nifti, list_files, study_folder
from .volume import Volume, sitk_to_array, to_sitk

log = logging.getLogger(__name__)

PREPARE_VERSION = "1"
REFERENCE = "t1"
"""The sequence the others are co-registered to and that is registered to the atlas: the atlas is a
T1, so this pair is the like-for-like one."""
STAGES = ("read", "assign", "convert", "atlas", "coregister", "skull", "write", "qc")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
Progress = Callable[[str, int, int], None]


@dataclass
class Prepared:
    """What `prepare_study` made: the case folder, its four files and the report."""

    case_dir: Path
    files: dict[str, Path]
    report: dict
    qc_png: Path
    report_path: Path = field(default=Path())


def _no_progress(stage: str, i: int, n: int) -> None:
    log.info("prepare: %s (%d/%d)", stage, i, n)


def check_case_id(case_id: str) -> str:
    if not CASE_ID_RE.match(case_id or ""):
        raise StudyError(
            f"case ID {case_id!r}: use 1-64 letters, digits, '_', '-' or '.' (it names the files; "
            "never a patient's name or ID)"
        )
    return case_id


def _threads() -> int:
    return max(1, int(os.environ.get("RADPATH_THREADS", os.cpu_count() or 2)))


def _find_series(folder: Path, overrides: dict[str, str]):
    files = list_files(folder)
    niftis = [p for p in files if is_nifti(p)]
    if niftis and len(niftis) == len([p for p in files if not p.name.lower().endswith(".json")]):
        series = nifti_series(folder, niftis)
        return "nifti", len(files), series, lambda: assign_nifti(series, overrides), read_nifti
    series = scan_series(files)
    check_one_patient(series)
    return "dicom", len(files), series, lambda: assign(series, overrides), read_volume


def _as_output(arr: np.ndarray, integer: bool) -> np.ndarray:
    if integer and arr.size and np.abs(arr).max() < 32767:
        return np.round(arr).astype(np.int16)
    return arr.astype(np.float32)


def _write(arr: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


def _ras(arr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """An array of the output grid in RAS+ voxel order (the release grid is x- and y-flipped)."""
    return nib.orientations.apply_orientation(arr, nib.orientations.io_orientation(affine))


def prepare_study(
    source: str | Path,
    out_dir: str | Path,
    case_id: str,
    overrides: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> Prepared:
    """Turn one study into `out_dir/case_id/` (see the module docstring); raises `StudyError`s."""
    check_case_id(case_id)
    progress = progress or _no_progress
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(_threads())
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str) -> None:
        timings[name] = time.perf_counter()
        progress(name, STAGES.index(name) + 1, len(STAGES))

    def done(name: str) -> None:
        timings[name] = round(time.perf_counter() - timings[name], 2)

    case_dir = Path(out_dir) / case_id
    with study_folder(source) as folder:
        stage("read")
        kind, n_files, series, assigner, reader = _find_series(folder, overrides or {})
        if Path(source).is_file():
            kind += "-zip"
        done("read")
        stage("assign")
        choices, set_aside = assigner()
        done("assign")
        stage("convert")
        native: dict[str, Volume] = {q: reader(choices[q].series) for q in SEQUENCES}
        done("convert")
    integer = all(np.allclose(v.data[::7, ::7], np.round(v.data[::7, ::7])) for v in native.values())
    images = {q: to_sitk(v) for q, v in native.items()}

    stage("atlas")
    atlas = atlas_t1()
    atlas_img = to_sitk(atlas)
    to_atlas = register.register_to_atlas(atlas_img, images[REFERENCE])
    done("atlas")
    stage("coregister")
    atlas_brain = sitk.Cast(
        to_sitk(Volume("atlas brain", atlas_brain_mask().astype(np.float32), atlas.affine)), sitk.sitkUInt8
    )
    brain = register.brain_in(images[REFERENCE], atlas_brain, to_atlas)
    fits: dict[str, register.Fit] = {}
    for q in ("t1ce", "flair", "t2"):  # each starts also from the others' transforms (see coregister)
        fits[q] = register.coregister(images[REFERENCE], images[q], brain, [f.transform for f in fits.values()])
    done("coregister")
    stage("skull")
    t1_grid = register.to_grid(images[REFERENCE], atlas_img, to_atlas.transform)
    mask, mask_info = brain_mask(t1_grid, atlas_img, atlas_brain_mask(), atlas.affine)
    done("skull")
    stage("write")
    case_dir.mkdir(parents=True, exist_ok=True)
    grids: dict[str, np.ndarray] = {}
    files: dict[str, Path] = {}
    for q in SEQUENCES:
        chain = [to_atlas.transform] + ([fits[q].transform] if q in fits else [])
        grid = (
            sitk_to_array(t1_grid) if q == REFERENCE else sitk_to_array(register.to_grid(images[q], atlas_img, *chain))
        )
        grids[q] = grid
        files[q] = case_dir / f"{case_id}_{q}.nii.gz"
        _write(_as_output(np.where(mask, grid, 0), integer), atlas.affine, files[q])
    done("write")
    stage("qc")
    qc_png = case_dir / f"{case_id}_prepare_qc.png"
    qc_picture(
        {q: _ras(g, atlas.affine) for q, g in grids.items()},
        _ras(atlas.data, atlas.affine),
        _ras(mask, atlas.affine),
        _ras(atlas_brain_mask(), atlas.affine),
        qc_png,
        f"{case_id}: prepared on the SRI24 / BraTS grid",
    )
    report = {
        "case_id": case_id,
        "prepare_version": PREPARE_VERSION,
        "input": {"kind": kind, "files": n_files, "series_found": len(series)},
        "sequences": {
            q: {"series": choices[q].series.label, "reason": choices[q].reason, "acquisition": native[q].facts}
            for q in SEQUENCES
        },
        "set_aside": set_aside,
        "grid": {"shape": list(atlas.data.shape), "affine": atlas.affine.tolist(), "atlas": "SRI24 T1 (BraTS space)"},
        "transforms": {
            "convention": "ITK: 4x4 matrices in LPS mm, mapping points of the fixed image to the moving one",
            "coregistration": {
                q: {"to": REFERENCE, "type": "rigid", "matrix": register.matrix_of(f), "mattes_mi": round(f.metric, 4)}
                for q, f in fits.items()
            },
            "atlas": {
                "from": REFERENCE,
                "type": "affine",
                "matrix": register.matrix_of(to_atlas),
                "mattes_mi": round(to_atlas.metric, 4),
            },
        },
        "brain_mask": mask_info,
        "outputs": {q: p.name for q, p in files.items()} | {"qc_picture": qc_png.name},
        "timings_s": timings,
        "threads": _threads(),
    }
    report_path = case_dir / f"{case_id}_prepare.json"
    timings["qc"] = round(time.perf_counter() - timings["qc"], 2)
    report["total_s"] = round(time.perf_counter() - t_all, 2)
    report_path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return Prepared(case_dir, files, report, qc_png, report_path)


def _json_default(v: object) -> object:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)
