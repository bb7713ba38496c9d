"""`radpath prepare`, `classify --prepare` and `classify-cohort --prepare` as a user runs them: one
line for bad input, progress per stage, the series and reasons, no patient data on any output."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from radpath.cli import EXIT_CASES_FAILED, main
from radpath.prepare import pipeline
from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry
from tests.prepare.conftest import PHI, all_output_bytes, atlas_study, write_study, zip_folder


@pytest.fixture(scope="module")
def server(model_base):
    s = Server([ModelEntry("glioma", model_base / "glioma", "latest", 2)], 0, 0, host="127.0.0.1").start()
    yield f"127.0.0.1:{s.grpc_port}"
    s.stop()


def test_a_missing_sequence_is_one_line_and_exit_1(tmp_path, capsys):
    root = write_study(tmp_path / "s", skip=("t2",))
    assert main(["prepare", str(root), "--out", str(tmp_path / "o"), "--case-id", "X"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == "[1/8] read" or err[-1].startswith("radpath prepare: error: no T2 series found")
    assert err[-1].startswith("radpath prepare: error: no T2 series found") and "--t2 SERIES" in err[-1]


def test_prepare_prints_stages_series_and_reasons_and_leaks_no_patient_data(tmp_path, small_atlas, capsys, caplog):
    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "prepare", str(study), "--out", str(tmp_path / "o"), "--case-id", "C7"]) == 0
    out, err = capsys.readouterr()
    assert [ln.split()[1] for ln in err.splitlines() if ln.startswith("[")] == list(pipeline.STAGES)
    assert 'flair <- series 5 "MRHR FLAIR AX": "MRHR FLAIR AX" says FLAIR' in out
    assert "time per stage (s): read" in out
    text = out + err + caplog.text
    assert not any(s in text for s in PHI)
    assert not any(s.encode() in all_output_bytes(tmp_path / "o" / "C7") for s in PHI)


def test_flags_choose_between_two_candidates(tmp_path, capsys):
    root = write_study(tmp_path / "s", extra=False, t1ce={"contrast": "", "description": "T1 AX SE 2"})
    assert main(["prepare", str(root), "--out", str(tmp_path / "o"), "--case-id", "X"]) == 1
    assert "choose one with --t1" in capsys.readouterr().err


def test_classify_prepare_a_dicom_zip(tmp_path, small_atlas, server, capsys):
    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    z = zip_folder(study, tmp_path / "upload.zip")
    argv = ["classify", str(z), "--prepare", "--case-id", "P1", "--server", server, "--json"]
    assert main(argv + ["--prepared-dir", str(tmp_path / "prep")]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert r["case_id"] == "P1" and r["class"] in ("A", "O", "G")
    assert r["prepared"]["sequences"]["t1ce"]["series"] == 'series 13 "MRHR T1 AX POST GAD"'
    assert (tmp_path / "prep" / "P1" / "P1_prepare_qc.png").is_file()
    assert not any(s in out + err for s in PHI)
    assert main(["classify", str(z), "--prepare", "--server", server]) == 1
    assert "--prepare needs --case-id" in capsys.readouterr().err


def test_classify_cohort_prepare_lists_a_failed_study_and_resumes(tmp_path, small_atlas, server, capsys, monkeypatch):
    vol, mask = small_atlas
    studies = tmp_path / "studies"
    atlas_study(studies / "GOOD_1", vol, mask)
    write_study(studies / "BAD_2", skip=("flair",))
    out = tmp_path / "pred.csv"
    argv = ["classify-cohort", str(studies), "--prepare", "--out", str(out), "--server", server, "--quiet"]
    assert main(argv) == EXIT_CASES_FAILED
    with open(out) as f:
        assert [r[0] for r in csv.reader(f)][1:] == ["GOOD_1"]
    with open(f"{out}.failed.csv") as f:
        failed = list(csv.reader(f))[1:]
    assert failed[0][0] == "BAD_2" and "no FLAIR series found" in failed[0][1]
    calls = []
    monkeypatch.setattr(
        "radpath.prepare.cohort.prepare_study", lambda *a, **k: calls.append(a) or pipeline.prepare_study(*a, **k)
    )
    assert main(argv) == EXIT_CASES_FAILED  # resumed: GOOD_1 neither prepared nor classified again
    assert [a[2] for a in calls] == ["BAD_2"]
    capsys.readouterr()
