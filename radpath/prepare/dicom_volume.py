"""One DICOM series -> a `Volume`: voxels and an affine from the tags (our own geometry).

Why our own instead of the dcm2niix wheel: the tags are read here anyway to choose the series, and
the geometry is a few lines of DICOM's definition (C.7.6.2.1.1): the voxel at column c, row r of a
slice sits at ImagePositionPatient + c * ΔX * X + r * ΔY * Y, with X, Y the two direction cosines
of ImageOrientationPatient and PixelSpacing = [ΔY (between rows), ΔX (between columns)], in LPS
millimetres. Slices are ordered along the normal X × Y by their position, not by file name or
instance number. What this refuses, dcm2niix would convert with a warning: slices that are not
equally spaced, tilted against each other, of different sizes, or several at one position (echoes,
time points). A refused series is named with the reason in one line.

Array contract: `Volume.data` float32 [i = column, j = row, k = slice]; `Volume.affine` voxel ->
RAS+ mm. Pixel values go through Rescale Slope / Intercept.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from .dicom_series import MULTI_FRAME_CLASSES, Series
from .errors import UnsupportedSeriesError
from .volume import LPS_FROM_RAS, Volume

MIN_SLICES = 3
"""Fewer slices than this is a localiser or a single 2-D image, not a volume to register."""
SPACING_RTOL = 0.02
"""Largest relative difference between gaps of consecutive slices still called equally spaced."""
ORIENTATION_ATOL = 1e-3


def check_decodable(series: Series) -> None:
    """Refuse, in one line, pixel data this install cannot decode (before reading any pixels)."""
    ts = UID(series.transfer_syntax) if series.transfer_syntax else None
    if ts is None or not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise UnsupportedSeriesError(
            f"{series.label}: pixel data compressed as {ts.name} ({ts}), which this install cannot decode; "
            "install a pydicom decoder plug-in for it (pylibjpeg-libjpeg, pylibjpeg-openjpeg or python-gdcm), "
            "or export the study uncompressed"
        )


def _slice_frames(series: Series) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float], float, float]]:
    """(pixels [rows, cols], position, orientation (6), (ΔY, ΔX), slope, intercept) per frame."""
    frames = []
    for path in series.files:
        ds = pydicom.dcmread(path)
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # pydicom raises several kinds for damaged or undecodable data
            raise UnsupportedSeriesError(f"{series.label}: pixel data of {path.name} cannot be read ({exc})") from None
        if str(ds.get("SOPClassUID", "")) in MULTI_FRAME_CLASSES or int(ds.get("NumberOfFrames") or 1) > 1:
            frames.extend(_enhanced_frames(series, ds, pixels))
            continue
        try:
            pos = np.array([float(v) for v in ds.ImagePositionPatient])
            ori = np.array([float(v) for v in ds.ImageOrientationPatient])
            dy, dx = (float(v) for v in ds.PixelSpacing)
        except (AttributeError, ValueError, TypeError):
            raise UnsupportedSeriesError(
                f"{series.label}: {path.name} lacks Image Position / Orientation (Patient) or Pixel Spacing; "
                "a volume needs its full geometry"
            ) from None
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        frames.append((pixels, pos, ori, (dy, dx), slope, inter))
    return frames


def _group_item(ds: pydicom.Dataset, i: int, name: str) -> pydicom.Dataset | None:
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per and len(per) > i and per[i].get(name):
        return per[i].get(name)[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(name):
        return shared[0].get(name)[0]
    return None


def _enhanced_frames(series: Series, ds: pydicom.Dataset, pixels: np.ndarray) -> list:
    """Frames of an Enhanced MR object: geometry from the (per-frame or shared) functional groups."""
    n = int(ds.get("NumberOfFrames") or 1)
    if pixels.ndim == 2:
        pixels = pixels[None]
    out = []
    for i in range(n):
        pos_item = _group_item(ds, i, "PlanePositionSequence")
        ori_item = _group_item(ds, i, "PlaneOrientationSequence")
        pm = _group_item(ds, i, "PixelMeasuresSequence")
        if pos_item is None or ori_item is None or pm is None:
            raise UnsupportedSeriesError(
                f"{series.label}: frame {i + 1} of a multi-frame object has no plane position, orientation or "
                "pixel measures; cannot place it in space"
            )
        tr = _group_item(ds, i, "PixelValueTransformationSequence")
        slope = float(tr.get("RescaleSlope", 1)) if tr is not None else 1.0
        inter = float(tr.get("RescaleIntercept", 0)) if tr is not None else 0.0
        out.append(
            (
                pixels[i],
                np.array([float(v) for v in pos_item.ImagePositionPatient]),
                np.array([float(v) for v in ori_item.ImageOrientationPatient]),
                tuple(float(v) for v in pm.PixelSpacing),
                slope,
                inter,
            )
        )
    return out


def read_volume(series: Series) -> Volume:
    """The series as one 3-D volume on a regular grid, or an `UnsupportedSeriesError` saying why not."""
    check_decodable(series)
    frames = _slice_frames(series)
    if len(frames) < MIN_SLICES:
        raise UnsupportedSeriesError(
            f"{series.label}: {len(frames)} image(s), a localiser or 2-D image, "
            f"not a volume (needs >= {MIN_SLICES} slices)"
        )
    ori = frames[0][2]
    spacing = frames[0][3]
    shape = frames[0][0].shape
    for f in frames:
        if np.abs(f[2] - ori).max() > ORIENTATION_ATOL:
            raise UnsupportedSeriesError(f"{series.label}: its slices are not parallel (several planes, a localiser?)")
        if f[0].shape != shape or np.abs(np.subtract(f[3], spacing)).max() > 1e-4:
            raise UnsupportedSeriesError(f"{series.label}: its slices differ in matrix size or pixel spacing")
        if f[0].ndim != 2:
            raise UnsupportedSeriesError(f"{series.label}: colour or multi-sample images are not MR magnitude images")
    x, y = ori[:3], ori[3:]
    normal = np.cross(x, y)
    order = sorted(range(len(frames)), key=lambda i: float(frames[i][1] @ normal))
    depth = np.array([float(frames[i][1] @ normal) for i in order])
    gaps = np.diff(depth)
    if gaps.min() < 1e-3:
        raise UnsupportedSeriesError(
            f"{series.label}: several images at one slice position (echoes, time points or repeats?); "
            "export one image per position"
        )
    if gaps.max() - gaps.min() > SPACING_RTOL * gaps.mean():
        raise UnsupportedSeriesError(
            f"{series.label}: slices are not equally spaced (gaps {gaps.min():.2f} to {gaps.max():.2f} mm); "
            "missing slices?"
        )
    data = np.stack([frames[i][0].astype(np.float32).T * frames[i][4] + frames[i][5] for i in order], axis=-1)
    dy, dx = spacing
    lps = np.eye(4)
    lps[:3, 0] = x * dx
    lps[:3, 1] = y * dy
    lps[:3, 2] = (frames[order[-1]][1] - frames[order[0]][1]) / (len(order) - 1)
    lps[:3, 3] = frames[order[0]][1]
    facts = dict(series.facts)
    facts.update(
        {
            "series_number": series.number,
            "description": series.description,
            "protocol": series.protocol,
            "matrix": [int(v) for v in data.shape],
            "voxel_mm": [round(float(dx), 4), round(float(dy), 4), round(float(gaps.mean()), 4)],
        }
    )
    return Volume(series.label, data.astype(np.float32), LPS_FROM_RAS @ lps, facts)
