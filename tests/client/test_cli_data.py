"""The data subcommands through the real entry point (`python -m client.cli`), exit codes included."""
import json
import subprocess
import sys

import pytest

from client.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "client.cli", *args], capture_output=True, text=True)


def test_synth_inspect_evaluate(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["synth", str(out), "--cases", "3", "--seed", "2", "--shape", "96", "96", "62", "--quiet"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    case = sorted((out / "Radiology").iterdir())[0]
    r = run("inspect", str(case), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert {"case_id", "slice_index", "tumor_voxels", "shape"} <= set(info)
    assert info["case_id"] == case.name and info["shape"] == [96, 96, 62] and info["tumor_voxels"] > 0
    labels = out / "training_data_classification_labels.csv"
    r = run("evaluate", str(labels), str(labels), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["mean"] == 1.0
    # refuses to overwrite a cohort
    assert main(["synth", str(out), "--cases", "3", "--quiet"]) == 1
    assert "already holds a cohort" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["inspect", "/nonexistent/CASE"], "is not a folder"),
    (["evaluate", "/nonexistent/p.csv", "/nonexistent/l.csv"], "file not found"),
])
def test_bad_input_is_one_line_and_exit_1(args, message):
    r = run(*args)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
