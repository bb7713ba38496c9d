import json

import jax
import numpy as np
import pytest

from radpath.contract.model_io import AGE_FILL_DAYS
from radpath.contract.model_store import complete_versions as versions
from radpath.preprocess import PREPROCESSING_VERSION
from radpath.train.export import NotBlessedError, export_run, saved_model_predict
from radpath.train.loop import init_variables, make_model
from radpath.train.run import save_model


def _run_dir(tmp_path, name, config, favour: int | None = None, labels=None):
    """A finished run folder; `favour` biases the head so the model always predicts that class."""
    variables = init_variables(config)
    if favour is not None:
        bias = np.zeros(3, np.float32)
        bias[favour] = 50.0
        variables["params"]["head"]["bias"] = bias
    run = tmp_path / name
    save_model(run / "model", variables, config)
    if labels is not None:
        rng = np.random.default_rng(1)
        np.savez(
            run / "holdout.npz",
            images=rng.normal(size=(len(labels), 224, 224, 8)).astype(np.float16),
            labels=np.array(labels),
            ages_days=np.full(len(labels), 20000.0, np.float32),
            case_ids=np.array([f"C{i}" for i in range(len(labels))]),
        )
    return run, variables


def test_savedmodel_matches_jax_at_batch_1_3_8(tmp_path, tiny_config):
    run, variables = _run_dir(tmp_path, "r", tiny_config.replace(seed=5))
    summary = export_run(run, tmp_path / "models", "glioma")
    assert summary["version"] == 1 and summary["parity_max_abs_diff"] <= 1e-5
    path = tmp_path / "models" / "glioma" / "1"
    model = make_model(tiny_config.replace(seed=5))
    rng = np.random.default_rng(0)
    for b in (1, 3, 8):
        x = rng.normal(size=(b, 224, 224, 8)).astype(np.float32)
        ref = np.asarray(jax.nn.softmax(model.apply(variables, x, np.full(b, AGE_FILL_DAYS, np.float32), train=False)))
        np.testing.assert_allclose(saved_model_predict(path, x), ref, atol=1e-5)
    extra = path / "assets.extra"
    info = json.loads((extra / "radpath.json").read_text())
    assert info["preprocessing_version"] == PREPROCESSING_VERSION and info["classes"] == ["A", "O", "G"]
    assert (extra / "tf_serving_warmup_requests").stat().st_size > 3 * 224 * 224 * 4 * 4


def test_signature_and_classes(tmp_path, tiny_config):
    import tensorflow as tf

    run, _ = _run_dir(tmp_path, "r", tiny_config, favour=1)
    export_run(run, tmp_path / "models")
    fn = tf.saved_model.load(str(tmp_path / "models" / "glioma" / "1")).signatures["serving_default"]
    spec = fn.structured_input_signature[1]["image"]
    assert spec.shape.as_list() == [None, 224, 224, 8] and spec.dtype == tf.float32
    out = fn(image=tf.zeros((2, 224, 224, 8)))
    assert out["probabilities"].shape == (2, 3)
    assert [c.decode() for c in out["classes"].numpy()] == ["O", "O"]


def test_blessing_refuses_a_worse_model_unless_forced(tmp_path, tiny_config):
    labels = [2] * 6 + [0] * 2  # mostly G
    good, _ = _run_dir(tmp_path, "good", tiny_config, favour=2, labels=labels)
    bad, _ = _run_dir(tmp_path, "bad", tiny_config, favour=0, labels=labels)
    base = tmp_path / "models"
    export_run(good, base)
    with pytest.raises(NotBlessedError, match="below version 1"):
        export_run(bad, base)
    assert versions(base / "glioma") == [1]
    assert not [p for p in (base / "glioma").iterdir() if p.name.startswith(".tmp")]  # nothing half-written left
    summary = export_run(bad, base, force=True)
    assert summary["version"] == 2 and summary["blessing"]["forced"]
    again = export_run(good, base)  # good beats the latest (bad) on the same split
    assert again["version"] == 3 and again["blessing"]["blessed"]


def test_export_needs_a_trained_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        export_run(tmp_path, tmp_path / "models")


def test_calibration_and_explain_signature(tmp_path, tiny_config):
    """The temperature and refer threshold of model/calibration.json are built in; `explain` serves
    probabilities plus a [b, 224, 224, 2] attribution map (one per view) in [0, 1]."""
    import tensorflow as tf

    config = tiny_config.replace(seed=7)
    run, variables = _run_dir(tmp_path, "r", config)
    (run / "model" / "calibration.json").write_text(json.dumps({"temperature": 2.0, "refer_threshold": 0.6}))
    summary = export_run(run, tmp_path / "models")
    assert summary["parity_max_abs_diff"] <= 1e-5
    loaded = tf.saved_model.load(str(tmp_path / "models" / "glioma" / "1"))
    assert set(loaded.signatures) == {"serving_default", "explain"}
    x = np.random.default_rng(3).normal(size=(2, 224, 224, 8)).astype(np.float32)
    logits = make_model(config).apply(variables, x, np.full(2, AGE_FILL_DAYS, np.float32), train=False)
    out = loaded.signatures["serving_default"](image=tf.constant(x))
    np.testing.assert_allclose(out["probabilities"].numpy(), np.asarray(jax.nn.softmax(logits / 2.0)), atol=1e-5)
    np.testing.assert_allclose(out["refer_threshold"].numpy(), [0.6, 0.6])
    ex = loaded.signatures["explain"](image=tf.constant(x))
    maps = ex["attribution"].numpy()
    assert maps.shape == (2, 224, 224, 2) and maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2, 3)), 1.0, atol=1e-5)
    np.testing.assert_allclose(ex["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-5)
    info = json.loads((tmp_path / "models" / "glioma" / "1" / "assets.extra" / "radpath.json").read_text())
    assert info["calibration"]["temperature"] == 2.0


def test_segmentation_head_and_age_model_exports_with_the_age_input_only(tmp_path, tiny_config):
    """A model trained with the auxiliary head serves the same signature (image + age_days); a run
    without calibration exports its refer threshold as not assessed."""
    import tensorflow as tf

    from radpath.contract.refer import NOT_ASSESSED

    config = tiny_config.replace(seg_weight=1.0, use_age=True, seed=11)
    run, variables = _run_dir(tmp_path, "r", config)
    assert "seg_head" in variables["params"]
    summary = export_run(run, tmp_path / "models")
    assert summary["parity_max_abs_diff"] <= 1e-5
    fn = tf.saved_model.load(str(tmp_path / "models" / "glioma" / "1")).signatures["serving_default"]
    assert set(fn.structured_input_signature[1]) == {"image", "age_days"}
    out = fn(image=tf.zeros((2, 224, 224, 8)), age_days=tf.constant([9000.0, 25000.0]))
    assert out["probabilities"].shape == (2, 3)
    np.testing.assert_allclose(out["refer_threshold"].numpy(), [NOT_ASSESSED] * 2)
