"""Push: convert a trained run with jax2tf to a versioned TensorFlow SavedModel for TF Serving.

    <model_base>/<name>/<version>/saved_model.pb, variables/, assets.extra/

The signature is `contract.signature`'s (names, inputs, outputs), the input `contract.model_io`'s
(shape, dtype, classes, the age fill); the batch dimension is polymorphic. Lowered for CPU and CUDA
both, so a model trained on a GPU box serves on CPU pods. The store layout and what a complete
version is are `contract.model_store`'s. `assets.extra/` holds TF Serving warm-up requests
(batch 1, 2, 4, 8, 16 = the batching sizes, and 6 = one case with its test-time views),
`radpath.json` (training config, metrics, preprocessing version, data description) and the model
card.

Blessing, as TFX's Evaluator/Pusher do: the new model and the current latest version are both
scored on the run's held-out split through the same inference path; the new version is pushed only
if its mean challenge score is not below the latest's (`force=True` overrides). The version folder
is written under a temporary name and renamed at the end, so TF Serving never sees half a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from radpath.contract import model_store as store
from radpath.contract.errors import RadPathError
from radpath.contract.metrics import challenge_scores
from radpath.contract.model_io import CLASSES, IMAGE_SHAPE, TUMOR_STATS, fill_ages
from radpath.contract.refer import NOT_ASSESSED
from radpath.contract.signature import (
    AGE_INPUT,
    ATTRIBUTION_OUTPUT,
    CLASSES_OUTPUT,
    DEFAULT_MODEL_NAME,
    EXPLAIN_SIGNATURE,
    IMAGE_INPUT,
    PROBABILITIES_OUTPUT,
    REFER_THRESHOLD_OUTPUT,
    SIGNATURE_NAME,
    TUMOR_STATS_INPUT,
    input_names,
)
from radpath.preprocess import PREPROCESSING_VERSION

from .config import TrainConfig
from .explain import explain_fn
from .fusion import fused_apply
from .loop import make_model
from .run import load_calibration, load_model

log = logging.getLogger(__name__)
WARMUP_BATCH_SIZES = (1, 2, 4, 6, 8, 16)
PARITY_TOLERANCE = 1e-5


class NotBlessedError(RadPathError):
    """The new model scores below the current latest version on the same evaluation split."""


def build_tf_module(variables: dict, config: TrainConfig, calibration: dict | None = None):
    """A tf.Module with the two signatures of `contract.signature` (`serve`, `explain`), running the
    JAX model through jax2tf (weights as tf.Variables), the calibration temperature built in."""
    import jax
    import tensorflow as tf
    from jax.experimental import jax2tf

    calibration = calibration or {}
    temperature = float(calibration.get("temperature", 1.0))
    threshold = np.float32(calibration.get("refer_threshold", NOT_ASSESSED))
    model = make_model(config)

    use_stats = config.reads_tumor_stats
    apply = fused_apply(model.apply, config)  # the network, pooled with the tumour-statistics reader if any

    def probabilities(v, images, ages, *stats):
        logits = apply(v, images, ages, train=False, tumor_stats=stats[0] if stats else None)
        return jax.nn.softmax(logits / temperature, axis=-1)

    image_shape = "(b, " + ", ".join(map(str, IMAGE_SHAPE)) + ")"
    shapes = [None, image_shape, "(b,)"] + ([f"(b, {len(TUMOR_STATS)})"] if use_stats else [])
    converted = jax2tf.convert(
        probabilities, polymorphic_shapes=shapes, native_serialization_platforms=("cpu", "cuda"), with_gradient=False
    )
    explained = jax2tf.convert(
        explain_fn(apply, temperature),
        polymorphic_shapes=shapes,
        native_serialization_platforms=("cpu", "cuda"),
        with_gradient=False,
    )
    module = tf.Module()
    module.weights = tf.nest.map_structure(lambda a: tf.Variable(np.asarray(a), trainable=False), variables)
    class_names = tf.constant(list(CLASSES))

    def outputs(images, ages, *stats):
        probs = converted(module.weights, images, ages, *stats)
        return {
            PROBABILITIES_OUTPUT: probs,
            CLASSES_OUTPUT: tf.gather(class_names, tf.argmax(probs, axis=1)),
            REFER_THRESHOLD_OUTPUT: tf.fill(tf.shape(images)[:1], threshold),
        }

    def explanation(images, ages, *stats):
        probs, maps = explained(module.weights, images, ages, *stats)
        return {PROBABILITIES_OUTPUT: probs, ATTRIBUTION_OUTPUT: maps}

    shape_of = {IMAGE_INPUT: [None, *IMAGE_SHAPE], AGE_INPUT: [None], TUMOR_STATS_INPUT: [None, len(TUMOR_STATS)]}
    specs = [tf.TensorSpec(shape_of[k], tf.float32, name=k) for k in input_names(config.use_age, use_stats)]
    fill = fill_ages(None, 1)[0]

    def signature(fn):
        """A tf.function with the contract's inputs (`input_names`: age and the tumour statistics only for
        models that read them; a model without age gets the contract's fill)."""

        def call(*inputs):
            image, rest = inputs[0], list(inputs[1:])
            ages = rest.pop(0) if config.use_age else tf.fill(tf.shape(image)[:1], fill)
            return fn(image, ages, *rest)

        return tf.function(call, autograph=False, input_signature=specs)

    module.serve = signature(outputs)
    module.explain = signature(explanation)
    return module


def saved_model_predict(
    path: Path,
    images: np.ndarray,
    ages_days: np.ndarray | None = None,
    batch: int = 8,
    tumor_stats: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities [n, 3] from a SavedModel's serving signature (in-process TensorFlow); `tumor_stats`
    [n, len(TUMOR_STATS)] for a model that takes them."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures[SIGNATURE_NAME]
    inputs = fn.structured_input_signature[1]
    if TUMOR_STATS_INPUT in inputs and tumor_stats is None:
        raise RadPathError(f"{path}: this model takes the tumour statistics ({TUMOR_STATS_INPUT}); pass tumor_stats")
    out = []
    for s in range(0, len(images), batch):
        x = images[s : s + batch].astype(np.float32)
        kwargs = {IMAGE_INPUT: tf.constant(x)}
        if AGE_INPUT in inputs:
            kwargs[AGE_INPUT] = tf.constant(fill_ages(None if ages_days is None else ages_days[s : s + batch], len(x)))
        if TUMOR_STATS_INPUT in inputs and tumor_stats is not None:
            kwargs[TUMOR_STATS_INPUT] = tf.constant(np.asarray(tumor_stats[s : s + batch], np.float32))
        out.append(fn(**kwargs)[PROBABILITIES_OUTPUT].numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def _write_warmup(path: Path, model_name: str, use_age: bool, use_tumor_stats: bool = False) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for b in WARMUP_BATCH_SIZES:
            req = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE_NAME)
            )
            req.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto(np.zeros((b, *IMAGE_SHAPE), np.float32)))
            if use_age:
                req.inputs[AGE_INPUT].CopyFrom(tf.make_tensor_proto(fill_ages(None, b)))
            if use_tumor_stats:
                req.inputs[TUMOR_STATS_INPUT].CopyFrom(
                    tf.make_tensor_proto(np.zeros((b, len(TUMOR_STATS)), np.float32))
                )
            log_entry = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            writer.write(log_entry.SerializeToString())


def _mean_score(labels: np.ndarray, probs: np.ndarray) -> float:
    return challenge_scores([CLASSES[i] for i in labels], [CLASSES[int(i)] for i in probs.argmax(1)])["mean"]


def parity_difference(saved: Path, variables: dict, config: TrainConfig, temperature: float, held) -> float:
    """Largest difference between the SavedModel's probabilities and the JAX model's on up to 8 held-out
    images (random ones when the run has none), with the inputs the model takes."""
    import jax

    has_held = held is not None and len(held["labels"])
    probe = (
        held["images"][:8].astype(np.float32)
        if has_held
        else np.random.default_rng(0).normal(size=(3, *IMAGE_SHAPE)).astype(np.float32)
    )
    probe_ages = fill_ages(None, len(probe))
    probe_stats = None
    if config.reads_tumor_stats:
        probe_stats = (
            held["tumor_stats"][: len(probe)].astype(np.float32)
            if has_held and "tumor_stats" in held
            else np.random.default_rng(1).normal(size=(len(probe), len(TUMOR_STATS))).astype(np.float32)
        )
    jax_logits = fused_apply(make_model(config).apply, config)(
        variables, probe, probe_ages, train=False, tumor_stats=probe_stats
    )
    jax_probs = np.asarray(jax.nn.softmax(jax_logits / temperature))
    tf_probs = saved_model_predict(saved, probe, probe_ages, tumor_stats=probe_stats)
    return float(np.abs(jax_probs - tf_probs).max())


def export_run(
    run_dir: str | Path, model_base: str | Path, name: str = DEFAULT_MODEL_NAME, force: bool = False
) -> dict:
    """Export RUN_DIR's final model as the next version under MODEL_BASE/NAME; returns a summary."""
    import tensorflow as tf

    run_dir, model_base = Path(run_dir), Path(model_base)
    variables, config = load_model(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    model_dir = store.model_dir(model_base, name)
    existing = store.complete_versions(model_dir)
    version = store.next_version(model_dir)

    summary: dict = {
        "model": name,
        "version": version,
        "path": str(store.version_dir(model_dir, version)),
        "blessing": None,
    }
    holdout_path = run_dir / "holdout.npz"
    held = np.load(holdout_path) if holdout_path.exists() else None
    calibration = load_calibration(run_dir)
    module = build_tf_module(variables, config, calibration)

    # parity: the SavedModel must compute what the JAX model computes
    tmp = store.temp_version_dir(model_dir, version, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tf.saved_model.save(module, str(tmp), signatures={SIGNATURE_NAME: module.serve, EXPLAIN_SIGNATURE: module.explain})
    summary["export_seconds"] = round(time.perf_counter() - t0, 1)
    diff = parity_difference(tmp, variables, config, calibration["temperature"], held)
    summary["parity_max_abs_diff"] = diff
    if diff > PARITY_TOLERANCE:
        shutil.rmtree(tmp)
        raise RadPathError(
            f"export check failed: SavedModel and JAX outputs differ by {diff:.2e} (> {PARITY_TOLERANCE})"
        )

    # blessing against the current latest version, on this run's held-out split
    if existing and held is not None and len(held["labels"]):
        images, labels, ages = held["images"].astype(np.float32), held["labels"], held["ages_days"]
        stats = held["tumor_stats"] if "tumor_stats" in held else None
        new_score = _mean_score(labels, saved_model_predict(tmp, images, ages, tumor_stats=stats))
        old_score = _mean_score(
            labels, saved_model_predict(store.version_dir(model_dir, existing[-1]), images, ages, tumor_stats=stats)
        )
        blessed = new_score >= old_score
        summary["blessing"] = {
            "split_cases": int(len(labels)),
            "new_mean": new_score,
            "latest_version": existing[-1],
            "latest_mean": old_score,
            "blessed": blessed,
            "forced": force and not blessed,
        }
        if not blessed and not force:
            shutil.rmtree(tmp)
            raise NotBlessedError(
                f"not pushed: mean challenge score {new_score:.4f} on the held-out split is below "
                f"version {existing[-1]}'s {old_score:.4f}; pass --force to push anyway"
            )
    elif existing:
        summary["blessing"] = {"blessed": None, "note": "run has no held-out split; pushed without comparison"}
        if not force:
            shutil.rmtree(tmp)
            raise NotBlessedError(
                "not pushed: this run has no held-out split to compare with version "
                f"{existing[-1]}; train with --holdout > 0 or pass --force"
            )

    extra = tmp / store.ASSETS_EXTRA_DIR
    _write_warmup(extra / store.WARMUP_FILE, name, config.use_age, config.reads_tumor_stats)
    info = {
        "model": name,
        "version": version,
        "classes": list(CLASSES),
        "preprocessing_version": PREPROCESSING_VERSION,
        "config": json.loads(config.to_json()),
        "data": metrics.get("data", {}),
        "holdout": metrics.get("holdout"),
        "cross_validation": metrics.get("cross_validation"),
        "source_run": str(run_dir.resolve()),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": input_names(config.use_age, config.reads_tumor_stats),
        "blessing": summary["blessing"],
        "calibration": calibration,
        "calibration_report": metrics.get("calibration"),
        "external": metrics.get("external"),
    }
    (extra / store.METADATA_FILE).write_text(json.dumps(info, indent=2, default=float))
    if (run_dir / store.MODEL_CARD_FILE).exists():
        shutil.copy(run_dir / store.MODEL_CARD_FILE, extra / store.MODEL_CARD_FILE)
    if (run_dir / "reliability.png").exists():
        shutil.copy(run_dir / "reliability.png", extra / "reliability.png")
    final = store.version_dir(model_dir, version)
    if final.exists():
        shutil.rmtree(tmp)
        raise RadPathError(f"{final} appeared while exporting (another export running?); try again")
    os.rename(tmp, final)
    return summary
