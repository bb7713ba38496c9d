"""A clinical upload: one DICOM study as a `.zip`, or four native-space NIfTI with "prepare" ticked.

Such an upload is not a BraTS-preprocessed case, so it is checked differently and prepared by the
worker before it is classified:
- at upload (in the check child, headers only, seconds): the zip unpacks safely, holds one patient,
  and the four sequences can be told apart (`radpath.prepare`'s own one-line errors: a missing
  sequence, two candidates, a 2-D or undecodable series, two patients); for native NIfTI the form's
  slots name the sequences and each file must be a readable 3-D volume;
- in the worker (minutes): `prepare_study` onto the BraTS grid, each stage shown on the case's
  page; then the usual classification of the prepared case, whose result also says which series
  became which sequence and why, with the QC picture.
The web case ID (random) is the only name the prepared files and report carry.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from radpath.contract.errors import RadPathError

STUDY_FIELD = "study"
PREPARE_FIELD = "prepare"
MARKER = "PREPARE"
"""Written into a native-NIfTI case's input folder: the worker prepares it before classifying."""
QC_IMAGE = "prepare_qc"


def is_study_field(name: str, filename: str) -> bool:
    return name == STUDY_FIELD and filename.lower().endswith(".zip")


def wants_prepare(files: dict, fields: dict) -> bool:
    return STUDY_FIELD in files or fields.get(PREPARE_FIELD, "") in ("on", "1", "true", "yes")


def _require_prepare() -> None:
    """A site installed without `radpath[prepare]` refuses clinical uploads in one line."""
    import importlib.util

    missing = [m for m in ("pydicom", "SimpleITK") if importlib.util.find_spec(m) is None]
    if missing:
        raise RadPathError(
            "this site cannot prepare DICOM studies or native NIfTI (the prepare extra is not installed: "
            f"{', '.join(missing)}); upload BraTS-preprocessed NIfTI, or ask IT to install radpath[prepare]"
        )


def check_upload(files: dict[str, Path], fields: dict[str, str]) -> str:
    """The upload-time checks (see the module docstring); returns what to mark; raises RadPathError."""
    _require_prepare()
    from radpath.prepare.dicom_series import check_one_patient, scan_series
    from radpath.prepare.nifti_input import read_nifti
    from radpath.prepare.series_roles import assign
    from radpath.prepare.study_input import list_files, study_folder

    if STUDY_FIELD in files:
        if len(files) > 1:
            raise RadPathError("send either one DICOM study (.zip) or the four NIfTI files, not both")
        with study_folder(files[STUDY_FIELD]) as folder:
            series = scan_series(list_files(folder))
            check_one_patient(series)
            assign(series)
        return "study"
    from radpath.contract.model_io import CHANNELS as SEQUENCES
    from radpath.prepare.dicom_series import Series

    missing = [q for q in SEQUENCES if q not in files]
    if missing:
        raise RadPathError(f"missing {', '.join(missing)}: upload all four sequences, or one DICOM study as a .zip")
    for q in SEQUENCES:
        read_nifti(Series(q, None, q, "", "MR", "", "", "", [files[q]], 3))
    return "nifti"


def mark(folder: Path, fields: dict[str, str], files: dict) -> None:
    """After commit: a native-NIfTI upload that asked for preparation gets the marker."""
    if STUDY_FIELD not in files and wants_prepare(files, fields):
        (folder / "input" / MARKER).write_text("prepare\n")


def needs_prepare(input_dir: Path) -> bool:
    return (input_dir / f"{STUDY_FIELD}.zip").is_file() or (input_dir / MARKER).is_file()


def prepare_job(case_dir: Path, note: Callable[[str | None], None]) -> tuple[dict[str, Path], dict]:
    """Prepare the case's upload into `case_dir/prepared/`; its four files and what the result shows."""
    _require_prepare()
    from radpath.prepare.pipeline import prepare_study

    inp = case_dir / "input"
    source = inp / f"{STUDY_FIELD}.zip" if (inp / f"{STUDY_FIELD}.zip").is_file() else inp
    overrides = {} if source.name.endswith(".zip") else _nifti_overrides(inp)

    def progress(stage: str, i: int, n: int) -> None:
        note(f"preparing the upload: {stage} (stage {i} of {n})")

    out = case_dir / "prepared"
    shutil.rmtree(out, ignore_errors=True)  # a retried job starts clean
    p = prepare_study(source, out, "case", overrides, progress)
    shutil.copy(p.files["flair"], out / "flair.nii.gz")  # the 3-D viewer's volume (route: flair.nii*)
    note(None)
    info = {
        "sequences": {q: {"series": s["series"], "reason": s["reason"]} for q, s in p.report["sequences"].items()},
        "set_aside": p.report["set_aside"],
        "timings_s": p.report["timings_s"],
        "qc": str(p.qc_png.relative_to(case_dir)),
    }
    return p.files, info


def _nifti_overrides(inp: Path) -> dict[str, str]:
    """Native NIfTI from the form: each slot's file is that sequence (the user chose the slot)."""
    from radpath.contract.model_io import CHANNELS as SEQUENCES

    out = {}
    for q in SEQUENCES:
        for suffix in (".nii.gz", ".nii"):
            if (inp / f"{q}{suffix}").is_file():
                out[q] = f"{q}{suffix}"
    return out


def prepared_flair(case_dir: Path) -> Path | None:
    p = case_dir / "prepared" / "flair.nii.gz"
    return p if p.is_file() else None
