"""Load SavedModel versions from a model base the way TF Serving does, and keep them current.

A version is an integer folder holding saved_model.pb. The registry polls the base path, loads new
versions (running their warm-up requests), serves the newest N per the version policy, and never
drops a working version for one that fails to load: a corrupt or half-written push is logged with
the reason and the previous version keeps serving.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.model_store import ASSETS_EXTRA_DIR, SAVED_MODEL_FILE, WARMUP_FILE, complete_versions
from contract.signature import SIGNATURE_NAME

from .model_config import ModelEntry

log = logging.getLogger(__name__)


class NotFound(Exception):
    """Unknown model or version (gRPC NOT_FOUND, HTTP 404)."""


class InvalidArgument(Exception):
    """Bad request tensor (gRPC INVALID_ARGUMENT, HTTP 400)."""


@dataclass
class LoadedVersion:
    name: str
    version: int
    path: Path
    fn: object                      # tf ConcreteFunction of the serving signature
    inputs: dict                    # name -> tf.TensorSpec
    outputs: list[str]
    signature_def: object           # tensorflow.core.protobuf.meta_graph_pb2.SignatureDef

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate and run the serving signature; raises InvalidArgument with a clear message."""
        import tensorflow as tf
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if missing or unknown:
            raise InvalidArgument(f"model {self.name} version {self.version} takes inputs {sorted(self.inputs)}; "
                                  f"missing {missing or 'none'}, unknown {unknown or 'none'}")
        feed = {}
        for key, spec in self.inputs.items():
            arr = inputs[key]
            if arr.dtype != spec.dtype.as_numpy_dtype:
                raise InvalidArgument(f"input '{key}' must be {spec.dtype.name}, got {arr.dtype}")
            if not spec.shape.is_compatible_with(arr.shape):
                raise InvalidArgument(f"input '{key}' must have shape {spec.shape.as_list()} (None = any), got {list(arr.shape)}")
            feed[key] = tf.constant(arr)
        batch = {a.shape[0] for a in inputs.values()}
        if len(batch) > 1:
            raise InvalidArgument(f"inputs disagree on the batch size: {sorted(batch)}")
        out = self.fn(**feed)
        return {k: v.numpy() for k, v in out.items()}


def _signature_def(path: Path):
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    return sm.meta_graphs[0].signature_def[SIGNATURE_NAME]


def _warm_up(lv: LoadedVersion) -> int:
    """Run assets.extra/tf_serving_warmup_requests, as TF Serving does at load. Returns the count."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    path = lv.path / ASSETS_EXTRA_DIR / WARMUP_FILE
    if not path.is_file():
        return 0
    n = 0
    for record in tf.data.TFRecordDataset(str(path)):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        req = entry.predict_log.request
        lv.run({k: tf.make_ndarray(v) for k, v in req.inputs.items()})
        n += 1
    return n


def load_version(name: str, version: int, path: Path) -> LoadedVersion:
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE_NAME not in loaded.signatures:
        raise ValueError(f"no {SIGNATURE_NAME} signature")
    fn = loaded.signatures[SIGNATURE_NAME]
    lv = LoadedVersion(name, version, path, fn, dict(fn.structured_input_signature[1]),
                       sorted(fn.structured_outputs), _signature_def(path))
    lv._keepalive = loaded  # the signature needs its SavedModel object alive
    t0 = time.perf_counter()
    n = _warm_up(lv)
    log.info("loaded %s version %d (%d warm-up requests, %.1f s)", name, version, n, time.perf_counter() - t0)
    return lv


class ModelRegistry:
    def __init__(self, entries: list[ModelEntry], poll_seconds: float = 2.0):
        self.entries = {e.name: e for e in entries}
        self.poll_seconds = poll_seconds
        self._loaded: dict[str, dict[int, LoadedVersion]] = {e.name: {} for e in entries}
        self._failed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must survive anything a model folder can do
                log.exception("model refresh failed")

    def refresh(self) -> None:
        for entry in self.entries.values():
            self._refresh(entry)

    def _wanted(self, entry: ModelEntry, on_disk: list[int]) -> list[int]:
        if entry.policy == "specific":
            return [v for v in on_disk if v in entry.specific]
        return list(reversed(on_disk))  # newest first; "latest" is cut to N below, after failures

    def _refresh(self, entry: ModelEntry) -> None:
        on_disk = complete_versions(entry.base_path)
        current = self._loaded[entry.name]
        keep: dict[int, LoadedVersion] = {}
        limit = entry.num_versions if entry.policy == "latest" else None
        for v in self._wanted(entry, on_disk):
            if limit is not None and len(keep) >= limit:
                break
            if v in current:
                keep[v] = current[v]
                continue
            path = entry.base_path / str(v)
            stamp = (path / SAVED_MODEL_FILE).stat().st_mtime
            if self._failed.get((entry.name, v)) == stamp:
                continue  # failed before and unchanged since
            try:
                keep[v] = load_version(entry.name, v, path)
            except Exception as exc:
                self._failed[(entry.name, v)] = stamp
                log.error("could not load %s version %d from %s (%s: %s); keeping the versions already serving",
                          entry.name, v, path, type(exc).__name__, str(exc).splitlines()[0][:300])
        dropped = sorted(set(current) - set(keep))
        if dropped:
            log.info("unloaded %s versions %s", entry.name, dropped)
        with self._lock:
            self._loaded[entry.name] = keep

    # -- queries
    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        with self._lock:
            if name not in self._loaded:
                raise NotFound(f"Servable not found for request: model {name!r} (serving: {sorted(self._loaded)})")
            versions = self._loaded[name]
            if not versions:
                raise NotFound(f"Servable not found for request: model {name!r} has no version loaded yet")
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                raise NotFound(f"Servable not found for request: model {name!r} version {version} "
                               f"(loaded versions: {sorted(versions)})")
            return versions[version]

    def loaded_versions(self, name: str) -> list[int]:
        with self._lock:
            if name not in self._loaded:
                raise NotFound(f"Could not find any versions of model {name!r}")
            return sorted(self._loaded[name])
