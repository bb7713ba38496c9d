"""A study as a zip (nested folders, any names) or as four native NIfTI; hostile zips refused."""

from __future__ import annotations

import json
import zipfile

import nibabel as nib
import numpy as np
import pytest

from radpath.prepare import study_input
from radpath.prepare.dicom_series import scan_series
from radpath.prepare.errors import StudyError
from radpath.prepare.nifti_input import assign_nifti, nifti_series, read_nifti
from radpath.prepare.study_input import list_files, study_folder
from tests.prepare.conftest import head_volume, oblique_affine, zip_folder


def test_a_zip_is_unpacked_privately_and_removed_after(study, tmp_path):
    z = zip_folder(study, tmp_path / "study.zip")
    with study_folder(z) as folder:
        assert len(scan_series(list_files(folder))) == 6
        where = folder
    assert not where.exists()


def test_a_member_leaving_the_archive_is_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../etc/x", b"1")
    with pytest.raises(StudyError, match="points outside the archive"), study_folder(z):
        pass


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(study_input, "MAX_UNPACKED_MB", 1)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * (3 * 2**20))
    with pytest.raises(StudyError, match="more than 1 MB"), study_folder(z):
        pass


def test_something_that_is_neither_folder_nor_zip(tmp_path):
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(StudyError, match="neither a folder nor a .zip"), study_folder(tmp_path / "x.txt"):
        pass


def _nifti_study(root, names, sidecars=None):
    root.mkdir()
    for seq, name in names.items():
        nib.save(nib.Nifti1Image(head_volume(contrast=seq).astype(np.int16), oblique_affine()), root / name)
        if sidecars and seq in sidecars:
            (root / name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecars[seq]))
    return root


def test_native_nifti_are_assigned_by_the_words_of_their_names(tmp_path):
    root = _nifti_study(
        tmp_path / "n",
        {
            "flair": "AX_FLAIR_5_fla.nii.gz",
            "t1": "T1_AX_10_t1.nii.gz",
            "t1ce": "T1_AX_POST_GAD_13_t1c.nii.gz",
            "t2": "T2_AX_2.nii.gz",
        },
    )
    choices, _ = assign_nifti(nifti_series(root, list_files(root)), {})
    assert {q: c.series.uid for q, c in choices.items()} == {
        "flair": "AX_FLAIR_5_fla.nii.gz",
        "t1": "T1_AX_10_t1.nii.gz",
        "t1ce": "T1_AX_POST_GAD_13_t1c.nii.gz",
        "t2": "T2_AX_2.nii.gz",
    }
    assert choices["t1ce"].reason == "the file name has 't1', 't1c', with contrast (gad, post, t1c in it)"
    vol = read_nifti(choices["t1"].series)
    assert vol.data.shape == (32, 36, 10) and np.allclose(vol.affine, oblique_affine())


def test_a_dcm2niix_sidecar_beats_the_file_name_and_flags_name_files(tmp_path):
    side = {"t2": {"SeriesDescription": "scan 2", "RepetitionTime": 4.0, "EchoTime": 0.1}}
    root = _nifti_study(
        tmp_path / "n",
        {"flair": "a_flair.nii.gz", "t1": "b_t1.nii.gz", "t1ce": "c_t1_gad.nii.gz", "t2": "d.nii.gz"},
        side,
    )
    choices, _ = assign_nifti(nifti_series(root, list_files(root)), {})
    assert "long TR and TE" in choices["t2"].reason
    choices, _ = assign_nifti(nifti_series(root, list_files(root)), {"t1": "c_t1_gad.nii.gz", "t1ce": "b_t1.nii.gz"})
    assert choices["t1"].series.uid == "c_t1_gad.nii.gz" and choices["t1"].reason == "chosen by --t1 c_t1_gad.nii.gz"


def test_release_style_names_are_understood(tmp_path):
    root = _nifti_study(tmp_path / "n", {q: f"{q}.nii.gz" for q in ("flair", "t1", "t1ce", "t2")})
    choices, _ = assign_nifti(nifti_series(root, list_files(root)), {})
    assert {q: c.series.uid for q, c in choices.items()} == {q: f"{q}.nii.gz" for q in choices}
