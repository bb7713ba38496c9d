"""Load SavedModel versions from a model base the way TF Serving does, and keep them current.

A version is an integer folder holding saved_model.pb. The registry polls the base path, loads new
versions (running their warm-up requests), serves the newest N per the version policy, and never
drops a working version for one that fails to load: a corrupt or half-written push is logged with
the reason and the previous version keeps serving. A version that failed is retried when any of
its files changes (a `cp -r` lands saved_model.pb before variables/: the first load fails, the
completed copy loads).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radpath.contract.errors import InvalidArgument, ModelFailure, NotFound
from radpath.contract.model_io import all_finite
from radpath.contract.model_store import ASSETS_EXTRA_DIR, SAVED_MODEL_FILE, WARMUP_FILE, complete_versions
from radpath.contract.signature import SIGNATURE_NAME

from .model_config import ModelEntry

log = logging.getLogger(__name__)


DEFAULT_MAX_ROWS = 16
"""Largest request batch when no batching config says otherwise (the export's largest warm-up size)."""


@dataclass
class LoadedVersion:
    name: str
    version: int
    path: Path
    fn: object  # tf ConcreteFunction of the serving signature
    inputs: dict  # name -> tf.TensorSpec
    outputs: list[str]
    signature_def: object  # tensorflow.core.protobuf.meta_graph_pb2.SignatureDef
    compiled_sizes: tuple[int, ...] = ()
    """Batch sizes the warm-up compiled; `run` pads (or splits) to them so no request size compiles
    anew (each new size costs the jax2tf module 2-4 s and ~10 MB that is never freed)."""
    signature_name: str = SIGNATURE_NAME
    others: dict = field(default_factory=dict)
    """The version's other signatures (e.g. `explain`), each a LoadedVersion of its own, unbatched."""

    def signature(self, name: str) -> LoadedVersion:
        """This version's signature `name` ('' = the default), or InvalidArgument naming the ones served."""
        if name in ("", self.signature_name):
            return self
        if name in self.others:
            return self.others[name]
        raise InvalidArgument(
            f"Serving signature key {name!r} not found; model {self.name!r} version "
            f"{self.version} serves {sorted([self.signature_name, *self.others])}"
        )

    def validate(self, inputs: dict[str, np.ndarray], max_rows: int = DEFAULT_MAX_ROWS) -> int:
        """Check one request on its own (names, dtype, shape, batch 1..max_rows, finite values)
        before it may join a batch; returns its row count or raises InvalidArgument."""
        where = f"model {self.name!r} version {self.version}"
        if not inputs:
            raise InvalidArgument(f"the request has no inputs; {where} takes {sorted(self.inputs)}")
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if missing or unknown:
            raise InvalidArgument(
                f"{where} takes inputs {sorted(self.inputs)}; missing {missing or 'none'}, unknown {unknown or 'none'}"
            )
        rows = set()
        for key, spec in self.inputs.items():
            arr = inputs[key]
            check_spec(key, spec, arr.dtype, list(arr.shape), max_rows)
            if arr.dtype.kind == "f" and not all_finite(arr):
                bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
                raise InvalidArgument(f"input '{key}' holds {bad} NaN or infinite values; a model input must be finite")
            rows.add(arr.shape[0])
        if len(rows) > 1:
            raise InvalidArgument(f"inputs disagree on the batch size: {sorted(rows)}")
        return rows.pop()

    def run(self, inputs: dict[str, np.ndarray], validated: bool = False) -> dict[str, np.ndarray]:
        """Run the serving signature, padded or split to the compiled batch sizes (validating first
        unless the caller did). Raises InvalidArgument for a bad request, ModelFailure for
        non-finite outputs."""
        rows = len(next(iter(inputs.values()))) if validated and inputs else self.validate(inputs, max_rows=2**31)
        chunk = max(self.compiled_sizes) if self.compiled_sizes else rows
        parts = [self._run_padded({k: v[i : i + chunk] for k, v in inputs.items()}) for i in range(0, rows, chunk)]
        out = (
            parts[0]
            if len(parts) == 1
            else {k: np.concatenate([p[k] for p in parts]) if parts[0][k].ndim else parts[0][k] for k in parts[0]}
        )
        for k, v in out.items():
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise ModelFailure(
                    f"model {self.name!r} version {self.version} produced non-finite '{k}' "
                    "for a finite input; the model is broken, not the request"
                )
        return out

    def _run_padded(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        rows = len(next(iter(inputs.values())))
        size = next((s for s in self.compiled_sizes if s >= rows), rows)
        if size > rows:
            inputs = {k: pad_rows(v, size) for k, v in inputs.items()}
        out = {k: v.numpy() for k, v in self.fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
        return {k: v[:rows] if v.ndim and len(v) == size else v for k, v in out.items()}


def pad_rows(array: np.ndarray, size: int) -> np.ndarray:
    """`array` with its last row repeated up to `size` rows (padding rows are dropped from outputs)."""
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)])


def check_spec(key: str, spec, dtype: np.dtype, shape: list[int], max_rows: int) -> None:
    """One input's dtype and shape against its TensorSpec, with the batch (first) axis in
    1..max_rows; shared by the numpy check and the TensorProto pre-check (which runs before a
    single value is decoded). Raises InvalidArgument."""
    want = spec.shape.as_list()
    if dtype != spec.dtype.as_numpy_dtype:
        raise InvalidArgument(f"input '{key}' must be {spec.dtype.name}, got {np.dtype(dtype).name}")
    if len(shape) != len(want) or any(w is not None and w != d for w, d in zip(want, shape)):
        got = "a scalar" if not shape else str(shape)
        raise InvalidArgument(f"input '{key}' must have shape {want} (None = any), got {got}")
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"input '{key}' has a negative dimension in shape {shape}")
    if want and want[0] is None and not 1 <= shape[0] <= max_rows:
        raise InvalidArgument(
            f"input '{key}' has a batch of {shape[0]} rows; this server takes 1..{max_rows} "
            "per request (split larger batches)"
        )


def _fingerprint(path: Path) -> tuple:
    """(file count, total bytes, newest mtime) of a version folder: changes while a copy is still
    landing, so a version that failed to load is retried once its files change."""
    count, size, newest = 0, 0, 0.0
    for p in path.rglob("*"):
        try:
            st = p.stat()
        except OSError:
            continue
        count += 1
        size += st.st_size
        newest = max(newest, st.st_mtime)
    return count, size, newest


def _signature_defs(path: Path):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    return sm.meta_graphs[0].signature_def


def _warm_up(lv: LoadedVersion) -> int:
    """Run assets.extra/tf_serving_warmup_requests, as TF Serving does at load. Returns the count."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = lv.path / ASSETS_EXTRA_DIR / WARMUP_FILE
    if not path.is_file():
        return 0
    n, sizes = 0, set()
    for record in tf.data.TFRecordDataset(str(path)):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        req = entry.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in req.inputs.items()}
        lv.run(inputs)
        sizes.add(len(next(iter(inputs.values()))))
        n += 1
    lv.compiled_sizes = tuple(sorted(sizes))
    return n


def load_version(name: str, version: int, path: Path) -> LoadedVersion:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    if SIGNATURE_NAME not in loaded.signatures:
        raise ValueError(f"no {SIGNATURE_NAME} signature")
    defs = _signature_defs(path)

    def version_of(key: str) -> LoadedVersion:
        fn = loaded.signatures[key]
        return LoadedVersion(
            name,
            version,
            path,
            fn,
            dict(fn.structured_input_signature[1]),
            sorted(fn.structured_outputs),
            defs[key],
            signature_name=key,
        )

    lv = version_of(SIGNATURE_NAME)
    lv.others = {key: version_of(key) for key in loaded.signatures if key != SIGNATURE_NAME}
    lv._keepalive = loaded  # the signatures need their SavedModel object alive
    t0 = time.perf_counter()
    n = _warm_up(lv)
    log.info("loaded %s version %d (%d warm-up requests, %.1f s)", name, version, n, time.perf_counter() - t0)
    return lv


class ModelRegistry:
    def __init__(self, entries: list[ModelEntry], poll_seconds: float = 2.0):
        self.entries = {e.name: e for e in entries}
        self.poll_seconds = poll_seconds
        self._loaded: dict[str, dict[int, LoadedVersion]] = {e.name: {} for e in entries}
        self._failed: dict[tuple[str, int], tuple] = {}
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
            stamp = _fingerprint(path)
            if self._failed.get((entry.name, v)) == stamp:
                continue  # failed before and unchanged since (a copy still landing changes it: retried)
            try:
                keep[v] = load_version(entry.name, v, path)
            except Exception as exc:
                self._failed[(entry.name, v)] = stamp
                log.error(
                    "could not load %s version %d from %s (%s: %s); keeping the versions already serving",
                    entry.name,
                    v,
                    path,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:300],
                )
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
                raise NotFound(
                    f"Servable not found for request: model {name!r} version {version} "
                    f"(loaded versions: {sorted(versions)})"
                )
            return versions[version]

    def loaded_versions(self, name: str) -> list[int]:
        with self._lock:
            if name not in self._loaded:
                raise NotFound(f"Could not find any versions of model {name!r}")
            return sorted(self._loaded[name])
