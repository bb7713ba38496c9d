"""Calibration maths: the temperature fit recovers a known temperature, ECE is ~0 for calibrated
probabilities and large for over-confident ones, the refer threshold keeps accepted errors under target."""

import numpy as np

from radpath.train.calibration import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    refer_threshold,
    views_to_proba,
)


def _sample(n: int, true_t: float, seed: int = 0):
    """Logits whose calibrated probabilities are softmax(logits / true_t); labels drawn from them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3.0, (n, 1, 3))
    p = views_to_proba(logits, true_t)
    labels = np.array([rng.choice(3, p=row) for row in p])
    return logits, labels


def test_fit_recovers_the_temperature():
    logits, labels = _sample(4000, 2.5)
    assert abs(fit_temperature(logits, labels) - 2.5) < 0.3


def test_the_fit_softens_but_never_sharpens():
    """Under-confident logits ask for T < 1: the free fit finds it, the default stops at MIN_TEMPERATURE,
    and the report keeps both."""
    from radpath.train.calibration import MIN_TEMPERATURE

    logits, labels = _sample(2000, 0.5, seed=3)
    assert abs(fit_temperature(logits, labels, lowest=0.0) - 0.5) < 0.1
    assert fit_temperature(logits, labels) == MIN_TEMPERATURE
    rep = calibrate(logits, labels)
    assert rep["temperature"] == MIN_TEMPERATURE and rep["temperature_free"] < 0.6


def test_ece_small_when_calibrated_large_when_overconfident():
    logits, labels = _sample(4000, 2.0, seed=1)
    assert expected_calibration_error(views_to_proba(logits, 2.0), labels) < 0.03
    assert expected_calibration_error(views_to_proba(logits, 0.5), labels) > 0.1


def test_calibration_lowers_ece_and_nll():
    logits, labels = _sample(600, 3.0, seed=2)
    rep = calibrate(logits, labels)
    assert rep["ece_after"] < rep["ece_before"] and rep["nll_after"] < rep["nll_before"]
    assert rep["cross_fitted"]["ece"] < rep["ece_before"]


def test_refer_threshold_meets_target_error():
    probs = np.array([[0.9, 0.05, 0.05]] * 50 + [[0.5, 0.3, 0.2]] * 50)
    labels = np.array([0] * 49 + [1] + [0] * 25 + [1] * 25)
    t = refer_threshold(probs, labels, max_error=0.05)
    assert t == 0.9
    accepted = probs.max(1) >= t
    assert (probs[accepted].argmax(1) != labels[accepted]).mean() <= 0.05
    assert refer_threshold(probs, np.ones(100, int), 0.05) == 1.0  # nothing achieves it: refer all


def test_ece_noise_floor_is_what_a_calibrated_model_shows_on_few_cases():
    from radpath.train.calibration import ece_noise_floor

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([2, 2, 2], size=45)
    small = ece_noise_floor(probs)
    large = ece_noise_floor(np.repeat(probs, 40, axis=0))
    assert 0.03 < small < 0.2 and large < small / 2
