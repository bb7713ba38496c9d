"""Finding and naming the series of a DICOM study from its tags, never from its file names."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from radpath.prepare.dicom_series import check_one_patient, scan_series
from radpath.prepare.errors import SeriesAssignmentError, StudyError
from radpath.prepare.series_roles import assign
from radpath.prepare.study_input import list_files
from tests.prepare.conftest import PHI, write_study


def _assign(root, overrides=None):
    series = scan_series(list_files(root))
    check_one_patient(series)
    return assign(series, overrides)


def test_the_four_sequences_are_found_by_tags_whatever_the_file_names(study):
    choices, aside = _assign(study)
    assert {q: c.series.number for q, c in choices.items()} == {"flair": 5, "t1": 10, "t1ce": 13, "t2": 2}
    assert "says FLAIR" in choices["flair"].reason
    assert "Contrast/Bolus Agent" in choices["t1ce"].reason and "no contrast" in choices["t1"].reason
    reasons = {d["series"]: d["reason"] for d in aside}
    assert "localiser" in reasons['series 1 "3-plane localizer"']
    assert "diffusion" in reasons['series 7 "AX DWI b1000"']


def test_sequence_parameters_decide_when_descriptions_say_nothing(tmp_path):
    blank = {
        q: {"description": f"series {i}", "protocol": f"p{i}"} for i, q in enumerate(("flair", "t1", "t1ce", "t2"))
    }
    root = write_study(tmp_path / "s", extra=False, **blank)
    choices, _ = _assign(root)
    assert {q: c.series.number for q, c in choices.items()} == {"flair": 5, "t1": 10, "t1ce": 13, "t2": 2}
    assert "TI 2500 ms" in choices["flair"].reason and "long TR and TE" in choices["t2"].reason
    assert "short TR and TE" in choices["t1"].reason and "Contrast/Bolus Agent" in choices["t1ce"].reason


def test_two_candidates_for_one_slot_name_both_and_the_flag(tmp_path):
    root = write_study(tmp_path / "s", extra=False, t1ce={"contrast": "", "description": "T1 AX SE 2"})
    with pytest.raises(SeriesAssignmentError) as e:
        _assign(root)
    msg = str(e.value)
    assert 'series 10 "T1 AX SE"' in msg and 'series 13 "T1 AX SE 2"' in msg and "--t1" in msg
    choices, aside = _assign(root, {"t1": "10", "t1ce": "13"})
    assert choices["t1ce"].reason == "chosen by --t1ce 13"


def test_a_missing_sequence_is_named_with_what_was_set_aside(tmp_path):
    root = write_study(tmp_path / "s", skip=("t2",))
    with pytest.raises(SeriesAssignmentError, match=r"no T2 series found .*localiser.*--t2 SERIES"):
        _assign(root)


def test_an_override_that_matches_nothing_lists_the_series(study):
    with pytest.raises(SeriesAssignmentError, match=r"--flair 99: no series match \(series here: series 1"):
        _assign(study, {"flair": "99"})


def test_two_patients_are_refused_without_naming_them(tmp_path, patient):
    root = write_study(tmp_path / "s")
    write_study(
        tmp_path / "s" / "other",
        patient={**patient, "PatientID": "OTHER-7", "PatientName": "Other^Person"},
        extra=False,
    )
    with pytest.raises(StudyError, match="2 patients") as e:
        _assign(root)
    assert not any(p in str(e.value) for p in (*PHI, "OTHER-7", "Other^Person"))


def test_a_bundled_ct_file_of_another_patient_is_refused_too(study):
    shutil.copy(get_testdata_file("CT_small.dcm"), study / "DICOM" / "ct.dcm")
    with pytest.raises(StudyError, match="patients"):
        _assign(study)


def test_non_dicom_files_are_skipped_and_an_empty_folder_is_explained(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StudyError, match="no DICOM image found"):
        scan_series(list_files(tmp_path))


def test_the_bundled_single_mr_slice_is_set_aside_as_2d(tmp_path):
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "a")
    series = scan_series(list_files(tmp_path))
    assert series[0].frames == 1
    with pytest.raises(SeriesAssignmentError, match="2-D image"):
        assign(series)
    assert pydicom.dcmread(tmp_path / "a").Modality == "MR"
