"""The challenge CSV: quoted both ways, formula-safe, strict on read, repairable on resume."""

import csv
import re

import pytest

from radpath.contract import predictions_csv as pc
from radpath.contract.errors import LabelsError

HOSTILE_IDS = [
    "CPM19_CBICA_AAB_1",
    "a,b",
    'quote"inside',
    "line\nbreak",
    '=HYPERLINK("http://x")',
    "+1",
    "-2",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "'quoted",
    "''=two",
]


def _row(i, cid):
    return pc.PredictionRow(cid, "AOG"[i % 3], (0.2, 0.3, 0.5), i % 2 == 0, 40 + i, ("no-tumour",) if i % 2 else ())


def test_hostile_ids_round_trip_and_no_cell_starts_a_formula(tmp_path):
    path = tmp_path / "p.csv"
    rows = [_row(i, cid) for i, cid in enumerate(HOSTILE_IDS)]
    pc.write_predictions(path, "CPM_RadPath_2019_ID", rows)
    assert pc.read_predictions(path).rows == rows
    with open(path, newline="", encoding="utf-8") as f:
        cells = [c for r in csv.reader(f) for c in r]
    assert not [c for c in cells if c.startswith(pc.FORMULA_LEADS)]
    assert pc.read_predictions(path).header == pc.prediction_header("CPM_RadPath_2019_ID")


@pytest.mark.parametrize("tail", ["CPM19_X,G,0.1", '"line\nbr'])
def test_torn_last_row_is_cut_on_resume(tmp_path, tail):
    path = tmp_path / "p.csv"
    pc.write_predictions(path, "CPM_RadPath_2019_ID", [_row(0, "A1"), _row(1, "x\ny")])
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(tail)
    with pytest.raises(LabelsError):
        pc.read_predictions(path)
    assert [r.case_id for r in pc.read_predictions(path, repair=True).rows] == ["A1", "x\ny"]
    assert [r.case_id for r in pc.read_predictions(path).rows] == ["A1", "x\ny"]  # the file itself was repaired


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("ID,class\n", "header ID,class"),
        ("CPM_RadPath_2019_ID,class\nA1,G\n\nA2,O\n", "line 3 is blank"),
        ("CPM_RadPath_2019_ID,class\nA1,X\n", "class 'X' of A1"),
        ("CPM_RadPath_2019_ID,class\nA1,G\nA1,O\n", "duplicate ID A1"),
        ("CPM_RadPath_2019_ID,class,p_A,p_O,p_G\nA1,G,0.1,nan,0.9\n", "not in [0, 1]"),
        ("CPM_RadPath_2019_ID,class\nA1,G,extra\n", "3 fields, the header has 2"),
    ],
)
def test_malformed_files_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "p.csv"
    path.write_text(content)
    with pytest.raises(LabelsError, match=re.escape(message)) as e:
        pc.read_predictions(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_merge(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pc.write_predictions(a, "CPM_RadPath_2020_ID", [_row(0, "Z9"), _row(1, "a,b")])
    pc.write_predictions(b, "CPM_RadPath_2020_ID", [_row(2, "=1+1")])
    assert pc.merge_predictions(tmp_path / "m.csv", [a, b]) == 3
    assert [r.case_id for r in pc.read_predictions(tmp_path / "m.csv").rows] == sorted(["Z9", "a,b", "=1+1"])
    with pytest.raises(LabelsError, match="appears in both"):
        pc.merge_predictions(tmp_path / "x.csv", [a, a])
    with pytest.raises(LabelsError, match="missing.csv: file not found"):
        pc.merge_predictions(tmp_path / "x.csv", [a, tmp_path / "missing.csv"])
    with pytest.raises(LabelsError, match="is a folder"):
        pc.merge_predictions(tmp_path, [a])
