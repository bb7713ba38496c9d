"""Push: convert a trained run with jax2tf to a versioned TensorFlow SavedModel for TF Serving.

    <model_base>/<name>/<version>/saved_model.pb, variables/, assets.extra/

Signature `serving_default`: input `image` float32 [batch, 224, 224, 4] (batch polymorphic; plus
`age_days` float32 [batch] for models trained with age); outputs `probabilities` float32
[batch, 3] in the order A, O, G and `classes` string [batch]. Lowered for CPU and CUDA both, so a
model trained on a GPU box serves on CPU pods. `assets.extra/` holds TF Serving warm-up requests
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

from preprocess import PREPROCESSING_VERSION
from preprocess.case import CLASSES
from preprocess.errors import RadPathError
from serving.model_registry import complete_versions

from .challenge_metrics import challenge_scores
from .config import AGE_FILL_DAYS, TrainConfig
from .loop import make_model
from .run import load_model

log = logging.getLogger(__name__)
WARMUP_BATCH_SIZES = (1, 2, 4, 6, 8, 16)
PARITY_TOLERANCE = 1e-5


class NotBlessedError(RadPathError):
    """The new model scores below the current latest version on the same evaluation split."""


def build_tf_module(variables: dict, config: TrainConfig):
    """A tf.Module whose `serving_default` runs the JAX model through jax2tf (weights as tf.Variables)."""
    import jax
    import tensorflow as tf
    from jax.experimental import jax2tf

    model = make_model(config)

    def probabilities(v, images, ages):
        return jax.nn.softmax(model.apply(v, images, ages, train=False), axis=-1)

    converted = jax2tf.convert(probabilities, polymorphic_shapes=[None, "(b, 224, 224, 4)", "(b,)"],
                               native_serialization_platforms=("cpu", "cuda"), with_gradient=False)
    module = tf.Module()
    module.weights = tf.nest.map_structure(lambda a: tf.Variable(np.asarray(a), trainable=False), variables)
    class_names = tf.constant(list(CLASSES))

    def outputs(images, ages):
        probs = converted(module.weights, images, ages)
        return {"probabilities": probs, "classes": tf.gather(class_names, tf.argmax(probs, axis=1))}

    image_spec = tf.TensorSpec([None, 224, 224, 4], tf.float32, name="image")
    if config.use_age:
        module.serve = tf.function(lambda image, age_days: outputs(image, age_days), autograph=False,
                                   input_signature=[image_spec, tf.TensorSpec([None], tf.float32, name="age_days")])
    else:
        module.serve = tf.function(lambda image: outputs(image, tf.fill(tf.shape(image)[:1], np.float32(AGE_FILL_DAYS))),
                                   autograph=False, input_signature=[image_spec])
    return module


def saved_model_predict(path: Path, images: np.ndarray, ages_days: np.ndarray | None = None,
                        batch: int = 8) -> np.ndarray:
    """Probabilities [n, 3] from a SavedModel's serving signature (in-process TensorFlow)."""
    import tensorflow as tf
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    wants_age = "age_days" in fn.structured_input_signature[1]
    out = []
    for s in range(0, len(images), batch):
        kwargs = {"image": tf.constant(images[s:s + batch].astype(np.float32))}
        if wants_age:
            ages = np.full(len(kwargs["image"]), AGE_FILL_DAYS, np.float32) if ages_days is None else ages_days[s:s + batch]
            kwargs["age_days"] = tf.constant(np.nan_to_num(ages, nan=AGE_FILL_DAYS).astype(np.float32))
        out.append(fn(**kwargs)["probabilities"].numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def _write_warmup(path: Path, model_name: str, use_age: bool) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for b in WARMUP_BATCH_SIZES:
            req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
            req.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((b, 224, 224, 4), np.float32)))
            if use_age:
                req.inputs["age_days"].CopyFrom(tf.make_tensor_proto(np.full((b,), AGE_FILL_DAYS, np.float32)))
            log_entry = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            writer.write(log_entry.SerializeToString())


def _mean_score(labels: np.ndarray, probs: np.ndarray) -> float:
    return challenge_scores([CLASSES[i] for i in labels], [CLASSES[int(i)] for i in probs.argmax(1)])["mean"]


def export_run(run_dir: str | Path, model_base: str | Path, name: str = "glioma", force: bool = False) -> dict:
    """Export RUN_DIR's final model as the next version under MODEL_BASE/NAME; returns a summary."""
    import jax
    import tensorflow as tf
    run_dir, model_base = Path(run_dir), Path(model_base)
    variables, config = load_model(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    model_dir = model_base / name
    existing = complete_versions(model_dir)
    version = (existing[-1] + 1) if existing else 1

    summary: dict = {"model": name, "version": version, "path": str(model_dir / str(version)), "blessing": None}
    holdout_path = run_dir / "holdout.npz"
    held = np.load(holdout_path) if holdout_path.exists() else None
    module = build_tf_module(variables, config)

    # parity: the SavedModel must compute what the JAX model computes
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    summary["export_seconds"] = round(time.perf_counter() - t0, 1)
    probe = (held["images"][:8].astype(np.float32) if held is not None and len(held["labels"])
             else np.random.default_rng(0).normal(size=(3, 224, 224, 4)).astype(np.float32))
    probe_ages = np.full(len(probe), AGE_FILL_DAYS, np.float32)
    jax_probs = np.asarray(jax.nn.softmax(make_model(config).apply(variables, probe, probe_ages, train=False)))
    tf_probs = saved_model_predict(tmp, probe, probe_ages)
    diff = float(np.abs(jax_probs - tf_probs).max())
    summary["parity_max_abs_diff"] = diff
    if diff > PARITY_TOLERANCE:
        shutil.rmtree(tmp)
        raise RadPathError(f"export check failed: SavedModel and JAX outputs differ by {diff:.2e} (> {PARITY_TOLERANCE})")

    # blessing against the current latest version, on this run's held-out split
    if existing and held is not None and len(held["labels"]):
        images, labels, ages = held["images"].astype(np.float32), held["labels"], held["ages_days"]
        new_score = _mean_score(labels, saved_model_predict(tmp, images, ages))
        old_score = _mean_score(labels, saved_model_predict(model_dir / str(existing[-1]), images, ages))
        blessed = new_score >= old_score
        summary["blessing"] = {"split_cases": int(len(labels)), "new_mean": new_score,
                               "latest_version": existing[-1], "latest_mean": old_score,
                               "blessed": blessed, "forced": force and not blessed}
        if not blessed and not force:
            shutil.rmtree(tmp)
            raise NotBlessedError(f"not pushed: mean challenge score {new_score:.4f} on the held-out split is below "
                                  f"version {existing[-1]}'s {old_score:.4f}; pass --force to push anyway")
    elif existing:
        summary["blessing"] = {"blessed": None, "note": "run has no held-out split; pushed without comparison"}
        if not force:
            shutil.rmtree(tmp)
            raise NotBlessedError("not pushed: this run has no held-out split to compare with version "
                                  f"{existing[-1]}; train with --holdout > 0 or pass --force")

    extra = tmp / "assets.extra"
    _write_warmup(extra / "tf_serving_warmup_requests", name, config.use_age)
    info = {"model": name, "version": version, "classes": list(CLASSES),
            "preprocessing_version": PREPROCESSING_VERSION, "config": json.loads(config.to_json()),
            "data": metrics.get("data", {}), "holdout": metrics.get("holdout"),
            "cross_validation": metrics.get("cross_validation"), "source_run": str(run_dir.resolve()),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": ["image", "age_days"] if config.use_age else ["image"], "blessing": summary["blessing"]}
    (extra / "radpath.json").write_text(json.dumps(info, indent=2, default=float))
    if (run_dir / "model_card.md").exists():
        shutil.copy(run_dir / "model_card.md", extra / "model_card.md")
    final = model_dir / str(version)
    if final.exists():
        shutil.rmtree(tmp)
        raise RadPathError(f"{final} appeared while exporting (another export running?); try again")
    os.rename(tmp, final)
    return summary
