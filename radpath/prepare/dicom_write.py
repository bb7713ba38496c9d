"""Write a volume as a DICOM MR series: for tests, benchmarks and demos (never patient data).

One MR Image Storage object per slice with the full geometry (Image Position / Orientation
(Patient), Pixel Spacing, Slice Thickness, Spacing Between Slices), the sequence tags a scanner
writes (TR, TE, TI, Scanning Sequence, Contrast/Bolus Agent), and the identity of a made-up
patient; or, with `multi_frame=True`, one Enhanced MR Image Storage object whose frames carry the
geometry in per-frame functional groups. `transfer_syntax` may be any one pydicom can encode
(explicit VR little endian by default, RLE Lossless natively).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid

from .dicom_series import ENHANCED_MR_IMAGE, MR_IMAGE
from .volume import LPS_FROM_RAS

FAKE_PATIENT = {"PatientName": "Test^Phantom", "PatientID": "PHANTOM-0001", "PatientBirthDate": "19700101"}


def _base(sop_class: str, series: dict, patient: dict, study_uid: str, series_uid: str, ts: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = series.get("frame_uid") or study_uid
    ds.StudyDate = ds.SeriesDate = dt.date(2020, 1, 1).strftime("%Y%m%d")
    ds.AccessionNumber = series.get("accession", "ACC-123456")
    ds.SeriesNumber = series.get("number", 1)
    ds.SeriesDescription = series.get("description", "")
    ds.ProtocolName = series.get("protocol", series.get("description", ""))
    ds.ImageType = series.get("image_type", ["ORIGINAL", "PRIMARY", "M", "ND"])
    ds.Manufacturer = "RadPath test writer"
    ds.MagneticFieldStrength = 1.5
    for k, v in patient.items():
        setattr(ds, k, v)
    for tag, key in (("RepetitionTime", "tr"), ("EchoTime", "te"), ("InversionTime", "ti"), ("FlipAngle", "flip")):
        if series.get(key) is not None:
            setattr(ds, tag, series[key])
    ds.ScanningSequence = series.get("scanning_sequence", "SE")
    ds.SequenceVariant = series.get("sequence_variant", "NONE")
    ds.MRAcquisitionType = series.get("acquisition", "2D")
    if series.get("contrast"):
        ds.ContrastBolusAgent = series["contrast"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    del ts
    return ds


def _geometry(affine_ras: np.ndarray) -> tuple[np.ndarray, list[float], list[float], float]:
    lps = LPS_FROM_RAS @ affine_ras
    dx, dy, dz = (float(v) for v in np.linalg.norm(lps[:3, :3], axis=0))
    iop = [*(lps[:3, 0] / dx), *(lps[:3, 1] / dy)]
    return lps, [round(float(v), 6) for v in iop], [dy, dx], dz


def write_series(
    data: np.ndarray,
    affine_ras: np.ndarray,
    out_dir: str | Path,
    series: dict,
    patient: dict | None = None,
    study_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    multi_frame: bool = False,
    names: str = "IM{:05d}",
) -> list[Path]:
    """Write `data` [i, j, k] (voxel -> RAS `affine_ras`) as a series; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    patient = dict(FAKE_PATIENT if patient is None else patient)
    study_uid = study_uid or generate_uid()
    series_uid = series.get("uid") or generate_uid()
    lps, iop, pixel_spacing, dz = _geometry(affine_ras)
    values = np.clip(np.round(data), -32768, 32767).astype(np.int16)
    positions = [[round(float(v), 4) for v in (lps @ [0, 0, k, 1])[:3]] for k in range(values.shape[2])]
    if multi_frame:
        return [
            _write_enhanced(
                values, positions, iop, pixel_spacing, dz, out_dir, series, patient, study_uid, series_uid, names
            )
        ]
    paths = []
    for k in range(values.shape[2]):
        ds = _base(MR_IMAGE, series, patient, study_uid, series_uid, transfer_syntax)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = UID(generate_uid())
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = positions[k]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [round(v, 6) for v in pixel_spacing]
        ds.SliceThickness = round(dz, 4)
        ds.SpacingBetweenSlices = round(dz, 4)
        ds.Rows, ds.Columns = values.shape[1], values.shape[0]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(values[:, :, k].T).tobytes()
        if transfer_syntax == RLELossless:
            ds.compress(RLELossless, np.ascontiguousarray(values[:, :, k].T))
        elif transfer_syntax != ExplicitVRLittleEndian:
            # a stand-in for a codec pydicom cannot write: the right transfer syntax, undecodable frames
            ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
            ds.PixelData = encapsulate([ds.PixelData])
        path = out_dir / names.format(k + 1)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _write_enhanced(values, positions, iop, pixel_spacing, dz, out_dir, series, patient, study_uid, series_uid, names):
    ds = _base(ENHANCED_MR_IMAGE, series, patient, study_uid, series_uid, ExplicitVRLittleEndian)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = UID(generate_uid())
    ds.InstanceNumber = 1
    ds.NumberOfFrames = values.shape[2]
    ds.Rows, ds.Columns = values.shape[1], values.shape[0]
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [round(v, 6) for v in pixel_spacing]
    pm.SliceThickness = round(dz, 4)
    po = Dataset()
    po.ImageOrientationPatient = iop
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    timing = Dataset()
    timing.RepetitionTime = series.get("tr", 0)
    timing.FlipAngle = series.get("flip", 90)
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    echo = Dataset()
    echo.EffectiveEchoTime = series.get("te", 0)
    shared.MREchoSequence = Sequence([echo])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in range(values.shape[2]):
        f = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = positions[k]
        f.PlanePositionSequence = Sequence([pp])
        frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.ascontiguousarray(np.transpose(values, (2, 1, 0))).tobytes()
    path = out_dir / names.format(1)
    ds.save_as(path, enforce_file_format=True)
    return path
