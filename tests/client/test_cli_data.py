"""The data subcommands through the real entry point (`python -m radpath`), exit codes included."""

import json
import subprocess
import sys

import pytest

from radpath.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "radpath", *args], capture_output=True, text=True)


def test_synth_inspect_evaluate(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["synth", str(out), "--cases", "3", "--seed", "2", "--shape", "96", "96", "62", "--quiet"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    case = sorted((out / "Radiology").iterdir())[0]
    r = run("inspect", str(case), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert {"case_id", "slice_index", "tumor_voxels", "shape", "warnings"} <= set(info)
    assert info["case_id"] == case.name and info["shape"] == [96, 96, 62] and info["tumor_voxels"] > 0
    files = [
        f"--{s}" if i % 2 == 0 else str(next(case.glob(f"*_{s}.nii*")))
        for s in ("flair", "t1", "t1ce", "t2")
        for i in (0, 1)
    ]
    r = run("inspect", *files, "--case-id", "P-7", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["case_id"] == "P-7" and json.loads(r.stdout)["slice_index"] == info["slice_index"]
    labels = out / "training_data_classification_labels.csv"
    r = run("evaluate", str(labels), str(labels), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["mean"] == 1.0
    # a labels file with an ungraded row: skipped with a note, not an error
    partial = tmp_path / "partial.csv"
    lines = labels.read_text().splitlines()
    partial.write_text("\n".join(lines[:-1] + [lines[-1].split(",")[0] + ",,"]) + "\n")
    r = run("evaluate", str(labels), str(partial), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 2 and "1 rows of" in r.stderr
    # refuses to overwrite a cohort
    assert main(["synth", str(out), "--cases", "3", "--quiet"]) == 1
    assert "already holds a cohort" in capsys.readouterr().err


def _predictions(tmp_path, text):
    p = tmp_path / "shard.csv"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "/nonexistent/CASE"], "is not a folder"),
        (["inspect", "--flair", "/x_flair.nii.gz"], "missing --t1 --t1ce --t2"),
        (["evaluate", "/nonexistent/p.csv", "/nonexistent/l.csv"], "file not found"),
        (["merge-predictions", "OUT", "/nonexistent/shard-1.csv"], "shard-1.csv: file not found"),
        (["merge-predictions", "OUT", "BLANK"], "line 3 is blank"),
        (["classify-cohort", "COHORT", "--out", "TMP"], "is a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message, tmp_path):
    blank = _predictions(tmp_path, "CPM_RadPath_2019_ID,class\nA1,G\n\nA2,O\n")
    args = [
        {"OUT": str(tmp_path / "m.csv"), "BLANK": blank, "TMP": str(tmp_path), "COHORT": str(tmp_path)}.get(a, a)
        for a in args
    ]
    r = run(*args)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
