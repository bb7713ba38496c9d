"""`prepare_study` end to end on a small study made from the atlas itself (so registration has a
right answer), on a 4 mm copy of the atlas grid to keep the test fast; the bundled atlas, its grid
and the release affine are checked on their own."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from radpath.prepare import atlas as atlas_mod
from radpath.prepare import pipeline, skull_strip
from radpath.prepare.errors import SeriesAssignmentError, StudyError
from tests.prepare.conftest import PHI, all_output_bytes, atlas_study, zip_folder


def test_a_dicom_study_becomes_a_case_on_the_atlas_grid(tmp_path, small_atlas):
    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    stages = []
    p = pipeline.prepare_study(study, tmp_path / "out", "CASE_1", progress=lambda s, i, n: stages.append((s, i, n)))
    assert [s for s, _, _ in stages] == list(pipeline.STAGES)
    assert sorted(f.name for f in p.case_dir.iterdir()) == sorted(
        [
            "CASE_1_flair.nii.gz",
            "CASE_1_t1.nii.gz",
            "CASE_1_t1ce.nii.gz",
            "CASE_1_t2.nii.gz",
            "CASE_1_prepare.json",
            "CASE_1_prepare_qc.png",
        ]
    )
    t1 = nib.load(p.files["t1"])
    assert t1.shape == vol.data.shape and np.allclose(t1.affine, vol.affine) and t1.get_data_dtype() == np.int16
    got = np.asarray(t1.dataobj, np.float32)
    brain = got != 0
    # registration found the head: the prepared T1 matches the atlas inside the brain
    assert np.corrcoef(got[mask & brain], vol.data[mask & brain])[0, 1] > 0.9
    # the head is the atlas's own: the brain mask, deformed onto it, stays the atlas brain
    assert 2 * (brain & mask).sum() / (brain.sum() + mask.sum()) > 0.9
    # and the other three sit on it (co-registration kept them where they were written)
    for q, sign in (("flair", -1), ("t1ce", 1), ("t2", -1)):
        seq = np.asarray(nib.load(p.files[q]).dataobj, np.float32)
        assert sign * np.corrcoef(seq[mask & brain], vol.data[mask & brain])[0, 1] > 0.9, q
    report = json.loads(p.report_path.read_text())
    assert report["sequences"]["flair"]["series"] == 'series 5 "MRHR FLAIR AX"'
    assert set(report["timings_s"]) == set(pipeline.STAGES) and report["total_s"] > 0
    assert len(report["transforms"]["atlas"]["matrix"]) == 4
    # no patient data in any output: the fake patient's name, ID, birth date, accession
    blob = all_output_bytes(p.case_dir)
    assert not any(s.encode() in blob for s in PHI)


def test_a_zip_of_the_study_gives_the_same_case(tmp_path, small_atlas, monkeypatch):
    monkeypatch.setenv("RADPATH_PREPARE_MASK", "affine")  # the mask step is not what this compares
    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    z = zip_folder(study, tmp_path / "study.zip", "nested")
    a = pipeline.prepare_study(study, tmp_path / "a", "A")
    b = pipeline.prepare_study(z, tmp_path / "b", "B")
    assert b.report["input"]["kind"] == "dicom-zip"
    for q in a.files:
        x, y = (np.asarray(nib.load(f.files[q]).dataobj, np.float32) for f in (a, b))
        assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.999


def test_bad_studies_fail_in_one_line_before_any_registration(tmp_path, small_atlas, monkeypatch):
    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    monkeypatch.setattr(pipeline.register, "coregister", lambda *a: pytest.fail("registration reached"))
    for f in (study / "d3").iterdir():  # the T2 series
        f.unlink()
    with pytest.raises(SeriesAssignmentError, match="no T2 series found"):
        pipeline.prepare_study(study, tmp_path / "out", "X")
    with pytest.raises(StudyError, match="case ID"):
        pipeline.prepare_study(study, tmp_path / "out", "../evil")


def test_the_bundled_atlas_is_on_the_release_grid():
    t1 = atlas_mod.atlas_t1()
    assert t1.data.shape == atlas_mod.BRATS_SHAPE == atlas_mod.atlas_brain_mask().shape
    assert np.allclose(t1.affine, np.array([[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]]))
    mask = atlas_mod.atlas_brain_mask()
    assert 1.3e6 < mask.sum() < 1.6e6  # an adult brain, about 1.45 litres
    # the brain sits inside the head of the T1 with skull (same voxel grid, not flipped against it)
    assert (t1.data[mask] > 10).mean() > 0.99
    assert skull_strip.__doc__
