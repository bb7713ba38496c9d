"""Four native-space NIfTI files (one per sequence, as dcm2niix writes them) as a study.

NIfTI carries no sequence tags, so the sequence comes from a dcm2niix JSON sidecar when there is one
(SeriesDescription, ProtocolName, RepetitionTime, EchoTime, InversionTime in seconds, judged by the
same rules as DICOM tags), else from the words of the file name ("FLAIR", "_t1c", "POST_GAD"...),
and the report says which. Flags override either.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from radpath.contract.model_io import CHANNELS as SEQUENCES

from .dicom_series import Series
from .errors import StudyError, UnsupportedSeriesError
from .series_roles import Choice, assign
from .study_input import NIFTI_SUFFIXES, is_nifti
from .volume import Volume

MAX_NIFTI_MB = 1024


def _stem(path: Path) -> str:
    name = path.name
    for suf in NIFTI_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _sidecar_facts(path: Path) -> tuple[str, str, dict]:
    side = path.with_name(_stem(path) + ".json")
    if not side.is_file():
        return "", "", {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return "", "", {}
    if not isinstance(meta, dict):
        return "", "", {}

    def ms(key: str) -> float | None:
        v = meta.get(key)
        return float(v) * 1000.0 if isinstance(v, int | float) else None

    facts = {
        "repetition_time_ms": ms("RepetitionTime"),
        "echo_time_ms": ms("EchoTime"),
        "inversion_time_ms": ms("InversionTime"),
        "scanning_sequence": str(meta.get("ScanningSequence", "")),
        "contrast_agent": str(meta.get("ContrastBolusIngredient", "") or ""),
        "image_type": "\\".join(meta.get("ImageType", [])) if isinstance(meta.get("ImageType"), list) else "",
    }
    facts = {k: v for k, v in facts.items() if v not in (None, "")}
    return str(meta.get("SeriesDescription", "")), str(meta.get("ProtocolName", "")), facts


def nifti_series(folder: Path, files: list[Path]) -> list[Series]:
    """Each NIfTI file as a pseudo-series: words from its sidecar, or else from its file name."""
    out = []
    for path in sorted(p for p in files if is_nifti(p)):
        desc, protocol, facts = _sidecar_facts(path)
        source = "sidecar"
        if not desc and not protocol:
            desc, source = _stem(path), "file name"
        rel = str(path.relative_to(folder))
        s = Series(
            uid=rel,
            number=None,
            description=desc,
            protocol=protocol,
            modality="MR",
            sop_class="",
            transfer_syntax="",
            patient_key="nifti",
            files=[path],
            frames=99,
            facts={**facts, "words_from": source},
        )
        out.append(s)
    return out


def assign_nifti(series: list[Series], overrides: dict[str, str]) -> tuple[dict[str, Choice], list[dict]]:
    """As `series_roles.assign`, where a flag may also name the file."""
    by_file = {}
    for seq, key in overrides.items():
        hit = [s for s in series if key and (s.uid == key or Path(s.uid).name == key)]
        by_file[seq] = hit[0].uid if len(hit) == 1 else key
    return assign(series, by_file)


def read_nifti(s: Series) -> Volume:
    """The file's voxels (float32, scaled) and its voxel -> RAS affine."""
    path = s.files[0]
    if path.stat().st_size > MAX_NIFTI_MB * 2**20:
        raise StudyError(f"{path.name}: larger than {MAX_NIFTI_MB} MB; refused")
    try:
        img = nib.nifti1.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many kinds for broken files
        raise UnsupportedSeriesError(f"{path.name}: not a readable NIfTI file ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 3:
        raise UnsupportedSeriesError(f"{path.name}: shape {data.shape} is not a 3-D volume")
    if not np.isfinite(data).all():
        raise UnsupportedSeriesError(f"{path.name}: holds NaN or infinite values")
    facts = dict(s.facts)
    facts.update(
        {
            "file": path.name,
            "matrix": list(data.shape),
            "voxel_mm": [round(float(z), 4) for z in img.header.get_zooms()[:3]],
        }
    )
    return Volume(path.name, data, img.affine, facts)


__all__ = ["SEQUENCES", "assign_nifti", "nifti_series", "read_nifti"]
