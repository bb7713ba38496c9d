"""Baselines beside every model: fitted on the training split only, scored on the same held-out cases."""

import csv
import json

import numpy as np
import pytest

from radpath.train.baselines import SIGN_COLUMNS, fit_baselines, fit_logistic, predict_baselines, predict_logistic


def test_logistic_regression_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)) * [1, 10, 0.1] + [0, 50, 2]
    y = (np.digitize(x[:, 0] + 0.3 * rng.normal(size=120), [-0.5, 0.7])).astype(np.int64)
    y[:5] = 1
    params = fit_logistic(x, y)
    z = (x - x.mean(0)) / x.std(0)
    ref = sk.LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, tol=1e-10).fit(z, y)
    np.testing.assert_allclose(predict_logistic(params, x), ref.predict_proba(z), atol=2e-3)


def _cohort(tmp_path, with_signs: bool):
    root = tmp_path / ("signs" if with_signs else "plain")
    (root / "Segmentation").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ids = [f"CPM19_X_{i}" for i in range(60)]
    labels = np.arange(60) % 3
    ages = (np.array([39, 54, 60])[labels] + rng.normal(0, 8, 60)) * 365.25
    if with_signs:
        with open(root / "Segmentation" / "appearance.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["case_id", "class", *SIGN_COLUMNS])
            w.writeheader()
            for cid, lab in zip(ids, labels):
                w.writerow(
                    {
                        "case_id": cid,
                        "class": "AOG"[lab],
                        "enhancing": int(lab == 2),  # a perfect sign of G
                        "mismatch": int(lab == 0) if rng.random() < 0.8 else "",
                        "calcified": int(lab == 1),
                        "frontal": int(rng.random() < 0.5),
                        "midline": 0,
                        "lesion_ml": f"{rng.uniform(5, 80):.1f}",
                    }
                )
    return root, ids, labels, ages


def test_signs_and_age_only_where_the_generator_wrote_its_signs(tmp_path):
    for with_signs in (False, True):
        root, ids, labels, ages = _cohort(tmp_path, with_signs)
        fitted = fit_baselines(root, ids[:40], labels[:40], ages[:40])
        assert set(fitted) == ({"age_only", "signs_and_age"} if with_signs else {"age_only"})
        assert fitted["age_only"]["features"] == ["age_years"] and fitted["age_only"]["n_train"] == 40
        probs = predict_baselines(fitted, root, ids[40:], ages[40:])
        assert set(probs) == set(fitted)
        for p in probs.values():
            assert p.shape == (20, 3)
            np.testing.assert_allclose(p.sum(1), 1.0)
        if with_signs:  # perfect signs beat age alone
            acc = {k: (p.argmax(1) == labels[40:]).mean() for k, p in probs.items()}
            assert acc["signs_and_age"] == 1.0 and acc["signs_and_age"] > acc["age_only"]
            # a cohort without the signs gets only the age baseline from the same fitted models
            plain, *_ = _cohort(tmp_path, False)
            assert set(predict_baselines(fitted, plain, ids[40:], ages[40:])) == {"age_only"}


@pytest.mark.slow  # a real (tiny) training run, about a minute of CPU
def test_run_reports_baselines_on_the_same_held_out_split(tmp_path):
    pytest.importorskip("jax")
    from radpath.synth.cohort import write_synthetic_cohort
    from radpath.train.config import TrainConfig
    from radpath.train.run import run_training

    cohort = tmp_path / "c"
    write_synthetic_cohort(cohort, cases=15, seed=3, shape=(64, 64, 42), workers=1, progress=False, style="legacy")
    # --epochs 1 with the default 2-epoch warm-up: the schedule must still work (issue 16 item 6)
    config = TrainConfig(width=2, stages=(1, 1, 1, 1), epochs=1, batch_size=4, learning_rate=1e-2)
    report = run_training(cohort, tmp_path / "run", config, folds=0, holdout=0.4, devices=1, progress=False)
    held, base = report["holdout"], report["baselines"]
    assert set(base) == {"age_only", "signs_and_age", "tumour_stats_and_age"}
    for b in base.values():
        assert {"f1_micro", "kappa", "balanced_accuracy", "mean", "ci95", "n"} <= set(b)
        assert b["n"] == held["n"] and b["n_train"] == report["data"]["cases_used"] - held["n"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["baselines"]["age_only"]["mean"] == base["age_only"]["mean"]
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "age only (logistic regression)" in card and "drawn signs + age" in card
    # fewer than 30 held-out cases: the refer threshold is not assessed and the card says so
    assert "**not assessed**" in card and report["calibration"]["refer"]["assessed"] is False
    assert json.loads((tmp_path / "run" / "model" / "calibration.json").read_text())["refer_threshold"] > 1


def test_tumour_stats_and_age_on_any_cohort_that_has_the_statistics(tmp_path):
    """The radiomics baseline needs no generator file: the tumour statistics of the examples and age."""
    from radpath.contract.model_io import TUMOR_STATS

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    stats = rng.normal(size=(60, len(TUMOR_STATS)))
    stats[:, 3] += 2.0 * y  # the class shows in one statistic
    ages = np.full(60, 20000.0)
    ids = [f"C{i}" for i in range(60)]
    fitted = fit_baselines(tmp_path, ids, y, ages, stats)  # tmp_path: no appearance.csv
    assert set(fitted) == {"age_only", "tumour_stats_and_age"}
    assert fitted["tumour_stats_and_age"]["features"][-1] == "age_years"
    probs = predict_baselines(fitted, tmp_path, ids, ages, stats)
    assert (probs["tumour_stats_and_age"].argmax(1) == y).mean() > 0.9
    assert set(predict_baselines(fitted, tmp_path, ids, ages)) == {"age_only"}  # no statistics, no score
    assert "tumour_stats_and_age" not in fit_baselines(tmp_path, ids, y, ages)
