"""A model pooled with the tumour-statistics reader (`train.fusion`): the reader is fitted on the
training cases when the fit ends, the pooled logits are what the formula says, the model saves, loads
and exports with the statistics input (jax2tf parity), and the report says what the network alone scores."""

import dataclasses

import jax
import numpy as np
import pytest

from radpath.contract.metrics import challenge_scores
from radpath.contract.model_io import CLASSES, TUMOR_STATS
from radpath.train.baselines import fit_baselines, fit_logistic, predict_logistic
from radpath.train.config import ConfigError, TrainConfig
from radpath.train.export import export_run, saved_model_predict
from radpath.train.fusion import FUSION_KEY, fused_apply, fusion_features
from radpath.train.loop import fit, init_variables, make_model, predict_logits, predict_proba
from radpath.train.run import load_model, network_alone, save_model
from tests.train.conftest import fake_examples

K = len(TUMOR_STATS)


def _with_stats(ex, seed: int = 3):
    """The examples with statistics whose first one carries the class (the images carry it too)."""
    rng = np.random.default_rng(seed)
    stats = rng.normal(size=(len(ex.labels), K)).astype(np.float32)
    stats[:, 0] += 2.0 * ex.labels
    return dataclasses.replace(ex, tumor_stats=stats)


def test_settings_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="stats_fusion must be in"):
        TrainConfig(stats_fusion=1.0)
    assert TrainConfig(stats_fusion=0.5).reads_tumor_stats
    assert not TrainConfig().reads_tumor_stats


def test_the_fit_ends_with_the_reader_and_the_logits_pool_both(tiny_config):
    config = tiny_config.replace(stats_fusion=0.5, use_age=True, epochs=1)
    ex = _with_stats(fake_examples(18, seed=4))
    result = fit(ex, config, progress=False)
    lr = result.variables[FUSION_KEY]
    # the reader is the `tumour_stats_and_age` baseline itself, fitted on the same training cases
    baseline = fit_baselines("/nonexistent", ex.case_ids, ex.labels, ex.ages_days, ex.tumor_stats)
    expected = baseline["tumour_stats_and_age"]["model"]
    np.testing.assert_allclose(lr["coef"], np.asarray(expected["coef"]), rtol=1e-4, atol=1e-5)

    logits = predict_logits(result.variables, config, ex, tta=False)[:, 0]
    net = {k: v for k, v in result.variables.items() if k != FUSION_KEY}
    alone = predict_logits(net, config.replace(stats_fusion=0.0), ex, tta=False)[:, 0]
    p_lr = predict_logistic(expected, fusion_features(ex.tumor_stats, ex.ages_days, config))
    pooled = 0.5 * np.asarray(jax.nn.log_softmax(alone)) + 0.5 * np.log(p_lr)
    np.testing.assert_allclose(logits, pooled, atol=2e-4)

    # the statistics move the answer; without them the model refuses in one line
    moved = dataclasses.replace(ex, tumor_stats=np.roll(ex.tumor_stats, 1, axis=0))
    probs = predict_proba(result.variables, config, ex, tta=False)
    assert np.abs(predict_proba(result.variables, config, moved, tta=False) - probs).max() > 0.05
    with pytest.raises(ValueError, match="tumour statistics"):
        predict_proba(result.variables, config, fake_examples(3), tta=False)

    report = network_alone(result.variables, config, ex)
    assert report["weight"] == 0.5
    net_probs = predict_proba(net, config.replace(stats_fusion=0.0), ex)
    expected_scores = challenge_scores([CLASSES[i] for i in ex.labels], [CLASSES[i] for i in net_probs.argmax(1)])
    assert report["network_alone_holdout"]["mean"] == pytest.approx(expected_scores["mean"])


def test_an_interrupted_fit_has_no_reader_yet(tmp_path, tiny_config):
    config = tiny_config.replace(stats_fusion=0.5, epochs=2)
    result = fit(_with_stats(fake_examples(12)), config, tmp_path / "ckpt", progress=False, stop_after=1)
    assert not result.completed and FUSION_KEY not in result.variables


def test_saves_loads_and_exports_with_the_statistics_input(tmp_path, tiny_config):
    import tensorflow as tf

    from radpath.contract.errors import RadPathError

    config = tiny_config.replace(stats_fusion=0.5, use_age=True, seed=5)
    ex = _with_stats(fake_examples(12, seed=2))
    variables = {**init_variables(config)}
    variables[FUSION_KEY] = {
        k: np.asarray(v, np.float32)
        for k, v in fit_logistic(fusion_features(ex.tumor_stats, ex.ages_days, config), ex.labels).items()
    }
    run = tmp_path / "run"
    save_model(run / "model", variables, config)
    loaded, loaded_config = load_model(run)
    assert loaded_config == config
    np.testing.assert_array_equal(np.asarray(loaded[FUSION_KEY]["coef"]), variables[FUSION_KEY]["coef"])

    rng = np.random.default_rng(1)
    np.savez(
        run / "holdout.npz",
        images=ex.images[:4, ex.centre].astype(np.float16),
        labels=ex.labels[:4],
        ages_days=np.full(4, 20000.0, np.float32),
        case_ids=np.array([f"C{i}" for i in range(4)]),
        tumor_stats=ex.tumor_stats[:4],
    )
    summary = export_run(run, tmp_path / "models")
    assert summary["parity_max_abs_diff"] <= 1e-5
    path = tmp_path / "models" / "glioma" / "1"
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"image", "age_days", "tumor_stats"}
    x = rng.normal(size=(4, 224, 224, 8)).astype(np.float32)
    served = saved_model_predict(path, x, np.full(4, 20000.0), tumor_stats=ex.tumor_stats[:4])
    apply = fused_apply(make_model(config).apply, config)
    jax_probs = np.asarray(
        jax.nn.softmax(apply(loaded, x, np.full(4, 20000.0, np.float32), tumor_stats=ex.tumor_stats[:4]))
    )
    np.testing.assert_allclose(served, jax_probs, atol=1e-5)
    with pytest.raises(RadPathError, match="tumor_stats"):
        saved_model_predict(path, x)
