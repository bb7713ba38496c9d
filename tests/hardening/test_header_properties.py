"""Property tests of the raw NIfTI header validator (preprocess.nifti_header.parse_header).

Whatever the 348 bytes hold, the validator answers with a VolumeHeader or a CaseError (never another
exception), and what it accepts is safe to act on: bounded shape and bytes, finite positive voxel
sizes, a finite invertible affine, a data offset inside the extension limit and the file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radpath.contract.errors import CaseError
from radpath.preprocess.limits import ReadLimits
from radpath.preprocess.nifti_header import MAX_AXIS_VOXELS, MIN_AXIS_VOXELS, parse_header
from tests.hardening.corpus import brain, header_for

LIMITS = ReadLimits(max_volume_bytes=64 * 1024 * 1024, max_extension_bytes=1024 * 1024)
BASE = header_for(brain(0))
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30, 3e38, np.nan, np.inf, -np.inf]),
)


def _check_accepted(h, file_size=None) -> None:
    assert len(h.shape) == 3 and all(MIN_AXIS_VOXELS <= s <= MAX_AXIS_VOXELS for s in h.shape)
    assert h.data_bytes <= LIMITS.max_volume_bytes
    assert all(math.isfinite(z) and z > 0 for z in h.zooms)
    assert np.isfinite(h.affine).all() and abs(np.linalg.det(h.affine[:3, :3])) >= 1e-6
    assert 352 <= h.data_offset <= 352 + LIMITS.max_extension_bytes
    if file_size is not None:
        assert h.data_offset + h.data_bytes <= file_size
    assert h.slope is None or (math.isfinite(h.slope) and h.slope != 0 and math.isfinite(h.inter))
    assert h.dtype.kind in "iuf"


def _parse(block: bytes, file_size=None):
    try:
        h = parse_header(block, "x.nii", LIMITS, file_size)
    except CaseError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.nii: ")
        return None
    _check_accepted(h, file_size)
    return h


@SETTINGS
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes_never_crash(block):
    _parse(block)


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 347), st.integers(0, 255)), min_size=1, max_size=12),
    st.one_of(st.none(), st.integers(0, 10**7)),
)
def test_byte_flips_of_a_valid_header(flips, file_size):
    block = bytearray(BASE.binaryblock)
    for pos, value in flips:
        block[pos] = value
    _parse(bytes(block), file_size)


@SETTINGS
@given(
    dim=st.lists(st.integers(-(2**15), 2**15 - 1), min_size=8, max_size=8),
    pixdim=st.lists(floats, min_size=8, max_size=8),
    datatype=st.one_of(
        st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 2304]),
        st.integers(-(2**15), 2**15 - 1),
    ),
    vox_offset=floats,
    slope=floats,
    inter=floats,
    srow=st.lists(floats, min_size=4, max_size=4),
    sform_code=st.integers(-3, 5),
    qform_code=st.integers(-3, 5),
    quat=st.lists(floats, min_size=3, max_size=3),
)
def test_field_values(dim, pixdim, datatype, vox_offset, slope, inter, srow, sform_code, qform_code, quat):
    hdr = BASE.copy()
    hdr["dim"], hdr["pixdim"], hdr["datatype"] = dim, pixdim, datatype
    hdr["vox_offset"], hdr["scl_slope"], hdr["scl_inter"] = vox_offset, slope, inter
    hdr["srow_x"], hdr["sform_code"], hdr["qform_code"] = srow, sform_code, qform_code
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = quat
    h = _parse(hdr.binaryblock)
    if h is not None:  # accepted: it must say what the header says
        assert h.shape == tuple(dim[1:4])
        assert 1 <= dim[0] <= 7


@SETTINGS
@given(
    st.integers(MIN_AXIS_VOXELS, MAX_AXIS_VOXELS),
    st.integers(MIN_AXIS_VOXELS, MAX_AXIS_VOXELS),
    st.integers(MIN_AXIS_VOXELS, MAX_AXIS_VOXELS),
    st.sampled_from([2, 4, 16, 64]),
)
def test_size_limit_is_exact(x, y, z, datatype):
    hdr = BASE.copy()
    hdr["dim"] = [3, x, y, z, 1, 1, 1, 1]
    hdr["datatype"] = datatype
    nbytes = x * y * z * {2: 1, 4: 2, 16: 4, 64: 8}[datatype]
    h = _parse(hdr.binaryblock)
    assert (h is not None) == (nbytes <= LIMITS.max_volume_bytes)


def test_a_valid_header_is_accepted():
    h = parse_header(BASE.binaryblock, "x.nii", LIMITS)
    assert h.shape == (32, 32, 20) and h.dtype == np.int16 and h.data_offset == 352


@pytest.mark.parametrize("order", ["<", ">"])
def test_both_byte_orders(order):
    hdr = BASE.copy().as_byteswapped(order)
    assert parse_header(hdr.binaryblock, "x.nii", LIMITS).dtype.byteorder in ("=", "<", ">", "|")


VALID_FILE = None


def _valid_bytes() -> bytes:
    global VALID_FILE
    if VALID_FILE is None:
        from tests.hardening.corpus import nifti_bytes

        VALID_FILE = nifti_bytes(brain(0))
    return VALID_FILE


@settings(max_examples=150, deadline=None, database=None)
@given(
    cut=st.integers(0, 41_312),
    flips=st.lists(st.tuples(st.integers(0, 41_311), st.integers(0, 255)), max_size=4),
    gz=st.booleans(),
    gz_cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_reader_on_damaged_files_answers_or_raises_case_error(cut, flips, gz, gz_cut):
    """Truncated, byte-flipped, gzip-truncated versions of a valid file: read_volume returns a
    volume of the declared shape or raises CaseError, nothing else."""
    import gzip
    import tempfile
    from pathlib import Path

    from radpath.preprocess.read_case import read_volume

    data = bytearray(_valid_bytes()[:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    raw = bytes(data)
    if gz:
        raw = gzip.compress(raw, compresslevel=1)
        if gz_cut is not None:
            raw = raw[:gz_cut]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.nii.gz" if gz else "x.nii")
        path.write_bytes(raw)
        try:
            volume, affine = read_volume(path, LIMITS)
        except CaseError as exc:
            assert "\n" not in str(exc)
            return
        assert volume.ndim == 3 and np.isfinite(affine).all()
