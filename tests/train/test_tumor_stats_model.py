"""A model that reads the tumour statistics: trains, predicts, exports with the third input, and refuses
to run without them."""

import dataclasses

import numpy as np
import pytest

from radpath.contract.model_io import TUMOR_STATS
from radpath.train.export import export_run, saved_model_predict
from radpath.train.loop import fit, init_variables, predict_proba
from radpath.train.run import save_model
from tests.train.conftest import fake_examples

K = len(TUMOR_STATS)


def _with_stats(ex, informative: bool):
    """The examples with statistics; `informative`: the class shows in the first one (and not in the images)."""
    rng = np.random.default_rng(3)
    stats = rng.normal(size=(len(ex.labels), K)).astype(np.float32)
    images = ex.images.copy()
    if informative:
        stats[:, 0] = 3.0 * ex.labels
        images[..., 0] = rng.normal(size=images.shape[:-1])  # the images no longer tell the class
    return dataclasses.replace(ex, images=images, tumor_stats=stats)


def test_the_class_head_learns_from_the_statistics(tiny_config):
    """When only the statistics carry the class, a model that reads them fits the cases."""
    config = tiny_config.replace(tumor_stats=True, epochs=20, learning_rate=3e-2)
    ex = _with_stats(fake_examples(24, seed=4), informative=True)
    result = fit(ex, config, progress=False)
    probs = predict_proba(result.variables, config, ex, tta=False)
    assert (probs.argmax(1) == ex.labels).mean() >= 0.9
    changed = dataclasses.replace(ex, tumor_stats=np.roll(ex.tumor_stats, 1, axis=0))
    assert np.abs(predict_proba(result.variables, config, changed, tta=False) - probs).max() > 0.1


def test_examples_without_statistics_are_refused_in_one_line(tiny_config):
    config = tiny_config.replace(tumor_stats=True)
    with pytest.raises(ValueError, match="tumour statistics"):
        predict_proba(init_variables(config), config, fake_examples(3), tta=False)


def test_export_has_the_statistics_input_and_matches_jax(tmp_path, tiny_config):
    import tensorflow as tf

    from radpath.contract.errors import RadPathError

    config = tiny_config.replace(tumor_stats=True, use_age=True, seed=5)
    run = tmp_path / "run"
    save_model(run / "model", init_variables(config), config)
    rng = np.random.default_rng(1)
    stats = rng.normal(size=(4, K)).astype(np.float32)
    np.savez(
        run / "holdout.npz",
        images=rng.normal(size=(4, 224, 224, 8)).astype(np.float16),
        labels=np.array([0, 1, 2, 0]),
        ages_days=np.full(4, 20000.0, np.float32),
        case_ids=np.array([f"C{i}" for i in range(4)]),
        tumor_stats=stats,
    )
    summary = export_run(run, tmp_path / "models")
    assert summary["parity_max_abs_diff"] <= 1e-5
    path = tmp_path / "models" / "glioma" / "1"
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures["serving_default"].structured_input_signature[1]) == {
        "image",
        "age_days",
        "tumor_stats",
    }
    assert "tumor_stats" in loaded.signatures["explain"].structured_input_signature[1]
    x = rng.normal(size=(2, 224, 224, 8)).astype(np.float32)
    a = saved_model_predict(path, x, tumor_stats=stats[:2])
    b = saved_model_predict(path, x, tumor_stats=stats[2:])
    assert np.abs(a - b).max() > 1e-4  # the served model reads them
    with pytest.raises(RadPathError, match="tumor_stats"):
        saved_model_predict(path, x)
