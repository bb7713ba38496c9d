"""Hostile paths and values on the client commands (issue 19, item 17): one clear line, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

LONG = "/tmp/" + "/".join(["d" * 200] * 25)  # 5 029 bytes: components are legal, the whole path is not
LONG_NAME = "/tmp/" + "n" * 300  # one component over 255


def run(*args):
    return subprocess.run([sys.executable, "-m", "radpath", *args], capture_output=True, text=True, timeout=120)


def _one_line(r, code: int, *words: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("WARNING ")]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["inspect", LONG], ["case_dir", "5029 bytes long", "allows 4095"]),
        (["classify", LONG, "--server", "127.0.0.1:1"], ["case_dir", "5029 bytes"]),
        (["classify-cohort", LONG, "--out", "/tmp/x.csv"], ["cohort", "5029 bytes"]),
        (["classify-cohort", "/tmp", "--out", LONG], ["--out", "5029 bytes"]),
        (["classify-cohort", LONG_NAME, "--out", "/tmp/x.csv"], ["cohort", "component of 300 bytes"]),
        (["evaluate", LONG, "/tmp/l.csv"], ["predictions", "5029 bytes"]),
        (["merge-predictions", "/tmp/m.csv", LONG], ["shards", "5029 bytes"]),
    ],
)
def test_a_path_the_system_cannot_open_is_one_line(args, words):
    _one_line(run(*args), 1, *words)


def _cohort(tmp_path):
    root = tmp_path / "cohort"
    (root / "Radiology" / "CASE_1").mkdir(parents=True)  # an empty case: fails on its own, listed
    return root


def test_a_non_utf8_csv_in_the_cohort_root_is_one_line(tmp_path):
    root = _cohort(tmp_path)
    (root / "labels.csv").write_bytes(b"CPM_RadPath_2019_ID,cl\xffass\n")
    line = _one_line(run("classify-cohort", str(root), "--out", str(tmp_path / "p.csv"), "--server", "127.0.0.1:1"), 1)
    assert "labels.csv: not UTF-8 text" in line


def test_a_folder_named_csv_in_the_cohort_root_is_not_taken_for_labels(tmp_path):
    root = _cohort(tmp_path)
    (root / "odd.csv").mkdir()
    r = run("classify-cohort", str(root), "--out", str(tmp_path / "p.csv"), "--server", "127.0.0.1:1", "--quiet")
    _one_line(r, 3, "1 cases failed")  # the empty case is listed; the folder is skipped, no traceback
    assert "CASE_1" in (tmp_path / "p.csv.failed.csv").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["classify", "/tmp", "--timeout", "-1"], ["--timeout", "positive number of seconds", "'-1'"]),
        (["classify", "/tmp", "--timeout", "nan"], ["--timeout", "'nan'"]),
        (["classify-cohort", "/tmp", "--out", "x.csv", "--timeout", "0"], ["--timeout", "'0'"]),
        (["classify-cohort", "/tmp", "--out", "x.csv", "--workers", "0"], ["--workers", ">= 1"]),
        (["classify-cohort", "/tmp", "--out", "x.csv", "--retries", "-2"], ["--retries", ">= 0"]),
    ],
)
def test_impossible_numbers_are_refused_by_the_parser(args, words):
    r = run(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    error = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert len(error) == 1 and all(w in error[0] for w in words), r.stderr


def test_the_client_refuses_a_timeout_that_cannot_work():
    from radpath.client.grpc_client import GlioClient, InvalidInputError

    with pytest.raises(InvalidInputError, match="positive number of seconds"):
        GlioClient("127.0.0.1:1", timeout=-1)


def test_slice_note_says_which_slice_the_model_saw():
    from radpath.client.cli import slice_note

    assert slice_note(True, []) == ""
    assert "most suspicious region" in slice_note(False, [{"code": "tumour-uncertain", "message": "m"}])
    assert "brain centre slice" in slice_note(False, [{"code": "no-tumour", "message": "m"}])
