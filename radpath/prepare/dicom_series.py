"""Find the image series of a DICOM study from the files' tags (never from file names).

Every file is opened without its pixel data; files that are not DICOM (a DICOMDIR, a README, a
viewer on the CD) are skipped. Images are grouped by Series Instance UID. What is kept per series
is what choosing and converting it needs: descriptions, sequence parameters, contrast agent, image
type and geometry. Patient name, ID, birth date and accession number are read only to tell whether
two patients are mixed in one upload; they are compared as a one-way hash and never stored,
printed or written (`patient_key`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import StudyError

log = logging.getLogger(__name__)

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.4"
IMAGE_SOP_CLASSES = {
    MR_IMAGE: "MR Image",
    ENHANCED_MR_IMAGE: "Enhanced MR Image",
    LEGACY_ENHANCED_MR_IMAGE: "Legacy Converted Enhanced MR Image",
}
MULTI_FRAME_CLASSES = {ENHANCED_MR_IMAGE, LEGACY_ENHANCED_MR_IMAGE}


@dataclass
class Series:
    """One DICOM series: its files and what its tags say (no patient data)."""

    uid: str
    number: int | None
    description: str
    protocol: str
    modality: str
    sop_class: str
    transfer_syntax: str
    patient_key: str
    files: list[Path] = field(default_factory=list)
    frames: int = 0
    facts: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name it: `series 5 "MRHR FLAIR AX"`."""
        if self.patient_key == "nifti":  # a file: its name may carry the patient's ID, so only its end
            return f"file ...{self.uid[-12:]}"
        num = f"series {self.number}" if self.number is not None else f"series {self.uid[-12:]}"
        desc = self.description or self.protocol or "(no description)"
        return f'{num} "{desc}"'

    def matches(self, key: str) -> bool:
        """Does a user's `--flair 5` (series number, UID or exact description) mean this series?"""
        k = key.strip()
        return k in (str(self.number), self.uid) or (bool(k) and k.lower() == self.description.lower())


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    v = ds.get(keyword)
    if v is None:
        return ""
    if isinstance(v, pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _num(ds: pydicom.Dataset, keyword: str) -> float | None:
    v = ds.get(keyword)
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _enhanced_mr_facts(ds: pydicom.Dataset) -> dict:
    """Sequence parameters of an Enhanced MR object live in functional groups, not the top level."""
    facts: dict = {}
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(group)
        if not seq:
            continue
        item = seq[0]
        timing = item.get("MRTimingAndRelatedParametersSequence")
        if timing and facts.get("repetition_time_ms") is None:
            facts["repetition_time_ms"] = _num(timing[0], "RepetitionTime")
            facts["flip_angle"] = _num(timing[0], "FlipAngle")
        echo = item.get("MREchoSequence")
        if echo and facts.get("echo_time_ms") is None:
            facts["echo_time_ms"] = _num(echo[0], "EffectiveEchoTime")
        mod = item.get("MRModifierSequence")
        if mod and facts.get("inversion_time_ms") is None:
            ti = mod[0].get("InversionTimes")
            facts["inversion_time_ms"] = float(ti[0]) if ti else None
    facts["scanning_sequence"] = _text(ds, "EchoPulseSequence")
    facts["contrast_agent"] = facts.get("contrast_agent") or _contrast_in_groups(ds)
    return {k: v for k, v in facts.items() if v not in (None, "")}


def _contrast_in_groups(ds: pydicom.Dataset) -> str:
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(group)
        if seq and seq[0].get("ContrastBolusUsageSequence"):
            return "ContrastBolusUsageSequence"
    return ""


def _facts(ds: pydicom.Dataset) -> dict:
    facts = {
        "image_type": _text(ds, "ImageType"),
        "scanning_sequence": _text(ds, "ScanningSequence"),
        "sequence_variant": _text(ds, "SequenceVariant"),
        "scan_options": _text(ds, "ScanOptions"),
        "sequence_name": _text(ds, "SequenceName"),
        "acquisition_type": _text(ds, "MRAcquisitionType"),
        "repetition_time_ms": _num(ds, "RepetitionTime"),
        "echo_time_ms": _num(ds, "EchoTime"),
        "inversion_time_ms": _num(ds, "InversionTime"),
        "flip_angle": _num(ds, "FlipAngle"),
        "contrast_agent": _text(ds, "ContrastBolusAgent"),
        "slice_thickness_mm": _num(ds, "SliceThickness"),
        "manufacturer": _text(ds, "Manufacturer"),
    }
    if _text(ds, "SOPClassUID") in MULTI_FRAME_CLASSES:
        facts.update(_enhanced_mr_facts(ds))
    return {k: v for k, v in facts.items() if v not in (None, "")}


def patient_key(ds: pydicom.Dataset) -> str:
    """A one-way hash of who the images belong to (ID, name, birth date), for comparison only."""
    who = "|".join(_text(ds, k).upper() for k in ("PatientID", "PatientName", "PatientBirthDate"))
    return hashlib.sha256(who.encode("utf-8", "replace")).hexdigest()[:16]


def _read_header(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        log.debug("%s: not a DICOM file (%s)", path.name, type(exc).__name__)
        return None


def scan_series(files: list[Path]) -> list[Series]:
    """The image series among `files`, by Series Instance UID, in series-number order."""
    series: dict[str, Series] = {}
    for path in files:
        ds = _read_header(path)
        if ds is None or "SeriesInstanceUID" not in ds:
            continue
        uid = str(ds.SeriesInstanceUID)
        s = series.get(uid)
        if s is None:
            number = ds.get("SeriesNumber")
            s = series[uid] = Series(
                uid=uid,
                number=int(number) if number not in (None, "") else None,
                description=_text(ds, "SeriesDescription"),
                protocol=_text(ds, "ProtocolName"),
                modality=_text(ds, "Modality"),
                sop_class=_text(ds, "SOPClassUID"),
                transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")) if ds.get("file_meta") else "",
                patient_key=patient_key(ds),
                facts=_facts(ds),
            )
        elif patient_key(ds) != s.patient_key:
            raise StudyError(f"{s.label}: its images belong to more than one patient; refused (never merged)")
        s.files.append(path)
        s.frames += int(ds.get("NumberOfFrames") or 1)
    if not series:
        raise StudyError("no DICOM image found (files are checked by content, not by name)")
    return sorted(series.values(), key=lambda s: (s.number is None, s.number or 0, s.uid))


def check_one_patient(series: list[Series]) -> None:
    """Refuse an upload that mixes patients: naming series, never the patients."""
    by_patient: dict[str, list[str]] = {}
    for s in series:
        by_patient.setdefault(s.patient_key, []).append(s.label)
    if len(by_patient) > 1:
        groups = "; ".join(", ".join(labels) for labels in by_patient.values())
        raise StudyError(
            f"the upload holds {len(by_patient)} patients ({groups}); refused, patients are never merged: "
            "upload one patient's study"
        )
