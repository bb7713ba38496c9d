import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score

from radpath.contract.metrics import bootstrap_intervals, challenge_scores, evaluate_files
from radpath.preprocess import LabelsError


@pytest.mark.parametrize("seed", range(25))
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    classes = rng.choice(["A", "O", "G", "AOG"], p=[0.15, 0.15, 0.2, 0.5])
    pool = list(classes) if len(classes) > 1 else [str(classes)] * 2 + ["A"]
    y_true = list(rng.choice(pool, n))
    y_pred = [t if rng.random() < 0.6 else str(rng.choice(["A", "O", "G"])) for t in y_true]
    s = challenge_scores(y_true, y_pred)
    assert s["f1_micro"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    k = cohen_kappa_score(y_true, y_pred)
    assert (math.isnan(s["kappa"]) and math.isnan(k)) or s["kappa"] == pytest.approx(k)


def test_perfect_and_confusion():
    s = challenge_scores(["A", "O", "G", "G"], ["A", "O", "G", "A"])
    assert s["confusion_matrix"]["rows_true_columns_predicted"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert s["per_class_recall"] == {"A": 1.0, "O": 1.0, "G": 0.5}
    assert challenge_scores(["A", "O", "G"], ["A", "O", "G"])["mean"] == 1.0


def test_bootstrap_interval_contains_the_estimate():
    y = ["A"] * 20 + ["O"] * 15 + ["G"] * 40
    p = y[:60] + ["G"] * 15
    ci = bootstrap_intervals(y, p, n_boot=300)
    s = challenge_scores(y, p)
    for m in ("f1_micro", "kappa", "balanced_accuracy", "mean"):
        assert ci[m][0] <= s[m] <= ci[m][1]


def _csv(path, rows, header="CPM_RadPath_2019_ID,class"):
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_evaluate_files(tmp_path):
    labels = _csv(tmp_path / "l.csv", [("a", "A"), ("b", "G"), ("c", "O")], "CPM_RadPath_2019_ID,class,age_in_days")
    labels.write_text("CPM_RadPath_2019_ID,class,age_in_days\na,A,1\nb,G,2\nc,O,3\n")
    preds = _csv(tmp_path / "p.csv", [("c", "O"), ("b", "G"), ("a", "O")])
    s = evaluate_files(preds, labels)
    assert s["f1_micro"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "rows, pattern",
    [
        ([("a", "A"), ("b", "G")], "1 labelled cases have no prediction"),
        ([("a", "A"), ("b", "G"), ("c", "O"), ("d", "A")], "1 predicted cases are not in the labels"),
        ([("a", "A"), ("b", "G"), ("c", "X")], "class 'X'"),
        ([("a", "A"), ("b", "G"), ("c", "O"), ("a", "G")], "duplicate ID a"),
    ],
)
def test_evaluate_rejects_bad_submissions(tmp_path, rows, pattern):
    labels = _csv(tmp_path / "l.csv", [("a", "A"), ("b", "G"), ("c", "O")])
    with pytest.raises(LabelsError, match=pattern):
        evaluate_files(_csv(tmp_path / "p.csv", rows), labels)
