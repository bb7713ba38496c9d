"""Validate a NIfTI-1/2 header from its raw bytes, before nibabel or numpy touch the file.

`nib.load` reads the header extensions (each may claim 2 GiB) before anyone can look at the header,
and reports a forged `dim[0]` as "vox offset too low". Here the fixed-size header (348 bytes for
NIfTI-1, 540 for NIfTI-2) is parsed on its own and every field the reader relies on is checked,
with one clear message per problem; the result says exactly how many bytes to skip and to read, so
the reader never reads more than the limits allow. Pure function of the bytes: property-tested.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, SupportsInt

import nibabel as nib
import numpy as np

from radpath.contract.errors import CaseError

from .limits import ReadLimits, human_bytes

MIN_AXIS_VOXELS = 8
MAX_AXIS_VOXELS = 1024
"""Accepted size of one axis; BraTS volumes are 240 x 240 x 155."""
VOXEL_SIZE_RANGE_MM = (0.1, 10.0)

DATATYPES: dict[int, np.dtype] = {
    2: np.dtype(np.uint8),
    4: np.dtype(np.int16),
    8: np.dtype(np.int32),
    16: np.dtype(np.float32),
    64: np.dtype(np.float64),
    256: np.dtype(np.int8),
    512: np.dtype(np.uint16),
    768: np.dtype(np.uint32),
    1024: np.dtype(np.int64),
    1280: np.dtype(np.uint64),
}
"""NIfTI datatype codes the reader accepts (real-valued scalars); complex, RGB, bit and float128 are refused."""
_KNOWN_UNSUPPORTED = {
    1: "binary (1 bit)",
    32: "complex64",
    128: "RGB24",
    1536: "float128",
    1792: "complex128",
    2048: "complex256",
    2304: "RGBA32",
}

ByteOrder = Literal["<", ">"]
_BYTE_ORDERS: tuple[ByteOrder, ...] = ("<", ">")

HEADER_SIZES: dict[int, tuple[type[nib.Nifti1Header], int]] = {
    348: (nib.Nifti1Header, 352),
    540: (nib.Nifti2Header, 544),
}
"""sizeof_hdr -> (nibabel header class, first byte after header + 4-byte extension flag)."""


@dataclass(frozen=True)
class VolumeHeader:
    """What the reader needs from a validated header."""

    shape: tuple[int, int, int]
    dtype: np.dtype  # stored dtype, with the file's byte order
    data_offset: int  # first voxel byte in the (decompressed) stream
    slope: float | None  # None: no intensity scaling
    inter: float
    affine: np.ndarray  # 4x4 float64, voxel -> mm
    zooms: tuple[float, float, float]

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def header_size(first4: bytes, where: str | Path) -> tuple[int, ByteOrder]:
    """(sizeof_hdr, byte order '<' or '>') from the first 4 bytes, or CaseError."""
    if len(first4) < 4:
        raise CaseError(where, f"not a NIfTI file: only {len(first4)} bytes")
    for order in _BYTE_ORDERS:
        size = struct.unpack(order + "i", first4)[0]
        if size in HEADER_SIZES:
            return size, order
    raise CaseError(
        where,
        f"not a NIfTI file: the header size field is {struct.unpack('<i', first4)[0]}, "
        "expected 348 (NIfTI-1) or 540 (NIfTI-2)",
    )


def _fmt_shape(dims: Iterable[SupportsInt]) -> str:
    return "x".join(str(int(d)) for d in dims)


def parse_header(
    block: bytes, where: str | Path, limits: ReadLimits = ReadLimits(), file_size: int | None = None
) -> VolumeHeader:
    """Validate the raw header `block` (exactly sizeof_hdr bytes) of one volume.

    `file_size` is the size of an uncompressed file (None for a gzip stream, whose length is only
    known by decompressing): with it, `vox_offset` and the voxel data are checked against the end of
    the file here. Raises CaseError naming `where` and the problem; nothing else.
    """
    size, order = header_size(block[:4], where)
    if len(block) < size:
        raise CaseError(where, f"the file ends inside the NIfTI header ({len(block)} of {size} bytes)")
    cls, min_offset = HEADER_SIZES[size]
    hdr = cls(binaryblock=bytes(block[:size]), endianness=order, check=False)

    magic = bytes(hdr["magic"])[:3]
    if magic == b"ni1" or magic == b"ni2":
        raise CaseError(
            where,
            "header says the voxels are in a separate .img file (NIfTI pair); expected a single-file .nii or .nii.gz",
        )
    if magic not in (b"n+1", b"n+2"):
        raise CaseError(where, f"not a NIfTI file: magic {bytes(hdr['magic'])!r}, expected b'n+1' or b'n+2'")

    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise CaseError(
            where, f"dim[0]={ndim} is not a valid number of dimensions (NIfTI allows 1..7); the header is corrupt"
        )
    dims = dim[1 : ndim + 1]
    if any(d < 1 for d in dims):
        raise CaseError(where, f"declared shape {tuple(dims)} has an axis of size < 1; the header is corrupt")
    extra = dims[3:]
    if ndim < 3 or any(d != 1 for d in extra):
        raise CaseError(where, f"expected a 3-D volume, the header declares {ndim}-D shape {tuple(dims)}")
    shape = (dims[0], dims[1], dims[2])
    if any(s < MIN_AXIS_VOXELS or s > MAX_AXIS_VOXELS for s in shape):
        raise CaseError(
            where,
            f"declared shape {shape} is not a plausible MRI volume "
            f"(each axis must be {MIN_AXIS_VOXELS}..{MAX_AXIS_VOXELS} voxels)",
        )

    code = int(hdr["datatype"])
    if code not in DATATYPES:
        kind = _KNOWN_UNSUPPORTED.get(code, "an unknown code")
        raise CaseError(
            where,
            f"unsupported voxel datatype {code} ({kind}); expected one of "
            "uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64",
        )
    dtype = DATATYPES[code].newbyteorder(order)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > limits.max_volume_bytes:
        raise CaseError(
            where,
            f"declares {_fmt_shape(shape)} {dtype.name} = {human_bytes(nbytes)} of voxels, "
            f"over the {human_bytes(limits.max_volume_bytes)} limit per volume "
            "(raise RADPATH_MAX_VOLUME_MB if the file is genuine)",
        )

    pixdim = [float(p) for p in hdr["pixdim"]]
    zooms = (pixdim[1], pixdim[2], pixdim[3])
    lo, hi = VOXEL_SIZE_RANGE_MM
    if not all(math.isfinite(z) and z > 0 for z in zooms):
        raise CaseError(where, f"declared voxel size {zooms} mm: each must be a positive, finite number")
    if not all(lo <= z <= hi for z in zooms):
        raise CaseError(where, f"declared voxel size {zooms} mm is outside {lo}..{hi} mm")

    offset = _data_offset(hdr, where, min_offset, limits)
    if file_size is not None:
        if offset > file_size:
            raise CaseError(where, f"vox_offset {offset} is past the end of the file ({file_size} bytes)")
        if offset + nbytes > file_size:
            raise CaseError(
                where,
                f"the file holds {file_size} bytes but the header needs {offset + nbytes} "
                f"({offset} of header + {nbytes} of voxels); is the file truncated?",
            )

    slope, inter = _scaling(hdr, where)
    affine = _affine(hdr, where)
    return VolumeHeader(shape, dtype, offset, slope, inter, affine, zooms)


def _data_offset(hdr: nib.Nifti1Header, where: str | Path, min_offset: int, limits: ReadLimits) -> int:
    raw = float(hdr["vox_offset"])
    if not math.isfinite(raw) or raw < 0:
        raise CaseError(where, f"vox_offset {raw} is not a valid byte offset")
    if raw != int(raw):
        raise CaseError(where, f"vox_offset {raw} is not a whole number of bytes")
    offset = max(int(raw), min_offset)  # 0 in some old single-file writers means "right after the header"
    if offset - min_offset > limits.max_extension_bytes:
        raise CaseError(
            where,
            f"vox_offset {offset} puts {human_bytes(offset - min_offset)} of header extensions "
            f"before the voxels, over the {human_bytes(limits.max_extension_bytes)} limit",
        )
    return offset


def _scaling(hdr: nib.Nifti1Header, where: str | Path) -> tuple[float | None, float]:
    """nibabel's rule: scl_slope 0 or NaN means unscaled; a NaN scl_inter means 0."""
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if math.isnan(slope) or slope == 0:
        return None, 0.0
    if math.isinf(slope):
        raise CaseError(where, f"scl_slope is {slope}; expected a finite intensity scale")
    if math.isnan(inter):
        inter = 0.0
    if math.isinf(inter):
        raise CaseError(where, f"scl_inter is {inter}; expected a finite intensity offset")
    if slope == 1 and inter == 0:
        return None, 0.0
    return slope, inter


def _affine(hdr: nib.Nifti1Header, where: str | Path) -> np.ndarray:
    sform, qform = int(hdr["sform_code"]), int(hdr["qform_code"])
    if sform > 0:
        rows = np.array([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]], dtype=np.float64)
        if not np.isfinite(rows).all():
            raise CaseError(where, f"the sform (sform_code {sform}) holds NaN or infinite values")
    elif qform > 0:
        q = [float(hdr[k]) for k in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")]
        if not all(math.isfinite(v) for v in q):
            raise CaseError(where, f"the qform (qform_code {qform}) holds NaN or infinite values")
        if q[0] ** 2 + q[1] ** 2 + q[2] ** 2 > 1.0 + 1e-6:
            raise CaseError(where, "the qform quaternion (quatern_b/c/d) has a norm above 1; the header is corrupt")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            affine = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    except Exception as exc:  # nibabel raises a few types for an impossible qform
        raise CaseError(where, f"the affine (sform/qform) cannot be computed ({exc})") from None
    with np.errstate(all="ignore"):
        det = abs(float(np.linalg.det(affine[:3, :3]))) if np.isfinite(affine).all() else float("nan")
    if not (det >= 1e-6 and math.isfinite(det)):
        raise CaseError(where, "the affine (sform/qform) is not a valid, invertible transform")
    return affine
