import pytest

from radpath.contract.labels import read_label_table
from radpath.preprocess import CohortError, LabelsError
from radpath.preprocess.cohort import read_cohort
from tests.conftest import copy_case


def test_reads_the_release_layout(small_cohort):
    cohort = read_cohort(small_cohort)
    assert cohort.id_column == "CPM_RadPath_2019_ID"
    assert len(cohort.entries) == 12 and not cohort.problems
    assert all(e.label in "AOG" and e.age_days > 18 * 365 for e in cohort.entries)


def _make(tmp_path, small_cohort, csv_text, n=2):
    root = tmp_path / "c"
    (root / "Radiology").mkdir(parents=True)
    src = sorted((small_cohort / "Radiology").iterdir())[:n]
    for s in src:
        copy_case(s, root / "Radiology")
    (root / "training_data_classification_labels.csv").write_text(csv_text.format(*[s.name for s in src]))
    return root


def test_2020_header_without_class(tmp_path, small_cohort):
    root = _make(tmp_path, small_cohort, "CPM_RadPath_2020_ID,age_in_days\n{0},20000\n{1},\n")
    cohort = read_cohort(root)
    assert cohort.id_column == "CPM_RadPath_2020_ID"
    assert [e.label for e in cohort.entries] == [None, None]
    assert sorted(e.age_days for e in cohort.entries if e.age_days) == [20000]


def test_listed_but_missing_case_is_reported(tmp_path, small_cohort):
    root = _make(tmp_path, small_cohort, "CPM_RadPath_2019_ID,class,age_in_days\n{0},A,1\n{1},G,2\nGHOST_1,O,3\n")
    cohort = read_cohort(root)
    assert [p[0] for p in cohort.problems] == ["GHOST_1"]
    assert "does not exist" in cohort.problems[0][1]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("CPM_RadPath_2019_ID,class\nX,B\n", "class 'B' of X is not one of A, O, G"),
        ("CPM_RadPath_2019_ID,class\nX,A\nX,G\n", "duplicate ID X"),
        ("ID,class\nX,A\n", "expected exactly one ID column"),
        ("CPM_RadPath_2019_ID,class,age_in_days\nX,A,old\n", "age_in_days 'old'"),
        ("CPM_RadPath_2019_ID,class\nX,A,extra\n", "3 fields"),
        ("", "empty"),
    ],
)
def test_malformed_labels(tmp_path, text, pattern):
    p = tmp_path / "labels.csv"
    p.write_text(text)
    with pytest.raises(LabelsError, match=pattern):
        read_label_table(p)


def test_not_a_cohort(tmp_path):
    with pytest.raises(CohortError, match="no Radiology/ folder"):
        read_cohort(tmp_path)
