"""DICOM -> voxels and affine: our own geometry against the volume that was written, and the series
it refuses in one line (2-D, gaps, undecodable compression) or reads (RLE, Enhanced MR multi-frame)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGLosslessSV1, RLELossless

from radpath.prepare.dicom_series import scan_series
from radpath.prepare.dicom_volume import read_volume
from radpath.prepare.dicom_write import write_series
from radpath.prepare.errors import UnsupportedSeriesError
from radpath.prepare.study_input import list_files
from tests.prepare.conftest import head_volume, oblique_affine


def _canonical(data, affine):
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    return img.get_fdata(), img.affine


def _read_back(tmp_path, **kw):
    data, affine = head_volume(), oblique_affine()
    write_series(data, affine, tmp_path / "s", {"number": 3, "description": "T1"}, **kw)
    (series,) = scan_series(list_files(tmp_path / "s"))
    return data, affine, series, read_volume(series)


@pytest.mark.parametrize(
    "kw", [{}, {"transfer_syntax": RLELossless}, {"multi_frame": True}], ids=["plain", "rle", "enhanced"]
)
def test_voxels_and_geometry_survive_the_round_trip(tmp_path, kw):
    data, affine, series, vol = _read_back(tmp_path, **kw)
    want, want_aff = _canonical(np.round(data), affine)
    got, got_aff = _canonical(vol.data, vol.affine)
    assert np.allclose(got_aff, want_aff, atol=1e-3)
    assert np.array_equal(got, want)
    assert vol.facts["voxel_mm"] == [2.0, 2.0, 4.0]


def test_slices_are_ordered_by_position_not_by_file_or_instance_number(tmp_path):
    data, affine, series, _ = _read_back(tmp_path)
    series.files = series.files[::-1][3:] + series.files[::-1][:3]
    vol = read_volume(series)
    want, _ = _canonical(np.round(data), affine)
    assert np.array_equal(_canonical(vol.data, vol.affine)[0], want)


def test_a_missing_slice_is_refused(tmp_path):
    _, _, series, _ = _read_back(tmp_path)
    series.files = [f for i, f in enumerate(sorted(series.files)) if i != 4]
    with pytest.raises(UnsupportedSeriesError, match=r'series 3 "T1": slices are not equally spaced'):
        read_volume(series)


def test_a_compression_this_install_cannot_decode_is_refused_by_name(tmp_path):
    write_series(
        head_volume(),
        oblique_affine(),
        tmp_path / "s",
        {"number": 4, "description": "T2"},
        transfer_syntax=JPEGLosslessSV1,
    )
    (series,) = scan_series(list_files(tmp_path / "s"))
    with pytest.raises(UnsupportedSeriesError, match=r'series 4 "T2": pixel data compressed as JPEG Lossless'):
        read_volume(series)


def test_bundled_jpeg_ls_file_is_decoded_or_refused_clearly(tmp_path):
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "x")
    (series,) = scan_series(list_files(tmp_path))
    with pytest.raises(UnsupportedSeriesError, match=r"(JPEG-LS Lossless.*cannot decode|a localiser or 2-D image)"):
        read_volume(series)


def test_bundled_rle_file_decodes_and_a_single_slice_is_called_2d(tmp_path):
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), tmp_path / "x")
    (series,) = scan_series(list_files(tmp_path))
    with pytest.raises(UnsupportedSeriesError, match=r"1 image\(s\), a localiser or 2-D image"):
        read_volume(series)


def test_several_images_at_one_position_are_refused(tmp_path):
    data, affine = head_volume(), oblique_affine()
    uid = "1.2.826.0.1.3680043.8.498.77"
    write_series(data, affine, tmp_path / "a", {"number": 6, "description": "T2 echo", "uid": uid}, names="a{:03d}")
    write_series(data, affine, tmp_path / "b", {"number": 6, "description": "T2 echo", "uid": uid}, names="b{:03d}")
    (series,) = scan_series(list_files(tmp_path))
    with pytest.raises(UnsupportedSeriesError, match="several images at one slice position"):
        read_volume(series)
