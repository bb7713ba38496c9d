"""Server-side batching of concurrent Predict requests, as TF Serving's --enable_batching does.

At most `num_batch_threads` batches run at once per served version (run slots). A request that
finds the queue empty and a slot free runs at once in its own thread: no hand-off to a worker and
back (two thread wake-ups, which on a busy machine cost more than the copies of a batch-1 image).
Otherwise it queues; `num_batch_threads` workers each wait for a free slot, then take everything
already waiting and, when that shows concurrent traffic, wait up to `batch_timeout_micros` for more
(up to `max_batch_size` rows): requests that arrive while the slots are busy are merged. The merged batch
is padded up to the next of `allowed_batch_sizes` (as TF Serving does), because every new batch
size costs the jax2tf module a compilation; those sizes are compiled ahead by the model's warm-up
requests. A request whose own batch reaches `max_batch_size` runs alone.

Only requests the server has already validated on their own are submitted, and only requests with
the same inputs, dtypes and per-row shapes are merged, so one client's malformed request can never
fail another's. Should a merged batch still fail, each request is rerun alone and gets its own
answer. At most `max_enqueued_batches` x `max_batch_size` rows wait; beyond that a request is
refused with `Unavailable` (TF Serving: "the batch scheduling queue ... is full").
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from radpath.contract.errors import RadPathError, Unavailable

from .model_registry import pad_rows

log = logging.getLogger(__name__)

KNOWN_PARAMETERS = (
    "max_batch_size",
    "batch_timeout_micros",
    "allowed_batch_sizes",
    "num_batch_threads",
    "max_enqueued_batches",
)


class BatchingConfigError(RadPathError):
    """A batching parameter this server does not implement, or a value it cannot honour."""


def check_parameters(params: dict) -> dict:
    """The batching parameters, checked: unknown names and impossible values are refused with a
    message (a silently ignored parameter looks honoured when it is not)."""
    unknown = sorted(set(params) - set(KNOWN_PARAMETERS))
    if unknown:
        raise BatchingConfigError(
            f"batching parameters {unknown} are not supported by the built-in server "
            f"(it implements {', '.join(KNOWN_PARAMETERS)})"
        )
    for key in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if key in params and not (isinstance(params[key], int) and params[key] >= 1):
            raise BatchingConfigError(f"batching parameter {key} must be a whole number >= 1, got {params[key]!r}")
    if params.get("batch_timeout_micros", 0) < 0:
        raise BatchingConfigError(f"batch_timeout_micros must be >= 0, got {params['batch_timeout_micros']}")
    allowed = list(params.get("allowed_batch_sizes") or [])
    top = params.get("max_batch_size", 16)
    if allowed and (sorted(allowed) != allowed or allowed[-1] != top or allowed[0] < 1):
        raise BatchingConfigError(f"allowed_batch_sizes {allowed} must increase and end at max_batch_size {top}")
    return params


class Batcher:
    def __init__(
        self,
        target,
        max_batch_size: int = 16,
        batch_timeout_micros: int = 5000,
        allowed_batch_sizes: Sequence[int] = (),
        num_batch_threads: int = 1,
        max_enqueued_batches: int = 64,
    ):
        check_parameters(
            {
                "max_batch_size": max_batch_size,
                "batch_timeout_micros": batch_timeout_micros,
                "allowed_batch_sizes": list(allowed_batch_sizes),
                "num_batch_threads": num_batch_threads,
                "max_enqueued_batches": max_enqueued_batches,
            }
        )
        self.target = target
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.allowed = sorted(allowed_batch_sizes) or [max_batch_size]
        self.max_queued_rows = max_enqueued_batches * max_batch_size
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._take_lock = threading.Lock()  # one worker gathers a batch at a time; several run at once
        self._slots = threading.Semaphore(num_batch_threads)  # batches running now
        for i in range(num_batch_threads):
            threading.Thread(target=self._work, name=f"batcher-{target.name}-{target.version}-{i}", daemon=True).start()

    def submit(self, inputs: dict[str, np.ndarray], rows: int | None = None) -> dict[str, np.ndarray]:
        """Run one validated request (alone or merged with others); blocks until its rows are back."""
        rows = len(next(iter(inputs.values()))) if rows is None else rows
        if rows >= self.max_batch_size:
            return self.target.run(inputs, validated=True)
        if self._queue.empty() and self._slots.acquire(blocking=False):  # idle: run here, now
            try:
                return self.target.run(inputs, validated=True)
            finally:
                self._slots.release()
        with self._count_lock:
            if self._queued_rows + rows > self.max_queued_rows:
                raise Unavailable(
                    f"the batch queue is full ({self._queued_rows} rows waiting, "
                    f"max_enqueued_batches x max_batch_size = {self.max_queued_rows}); retry later"
                )
            self._queued_rows += rows
        fut: Future = Future()
        self._queue.put((inputs, rows, fut, _merge_key(inputs)))
        return fut.result()

    def _dequeued(self, item) -> None:
        with self._count_lock:
            self._queued_rows -= item[1]

    def _take(self, group: list, rows: int, block_until: float | None) -> int:
        """Add queued requests to `group` (waiting until `block_until` if given); returns rows."""
        while rows < self.max_batch_size:
            try:
                if block_until is None:
                    item = self._queue.get_nowait()
                else:
                    remaining = block_until - time.monotonic()
                    if remaining <= 0:
                        break
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            self._dequeued(item)
            if rows + item[1] > self.max_batch_size or item[3] != group[0][3]:
                self._run([item])  # does not fit this batch: run it on its own
                continue
            group.append(item)
            rows += item[1]
        return rows

    def _work(self) -> None:
        while True:
            with self._take_lock:
                first = self._queue.get()
                self._slots.acquire()  # requests arriving while every slot is busy merge below
                self._dequeued(first)
                group = [first]
                rows = self._take(group, first[1], None)
                if len(group) > 1:  # concurrent traffic: worth waiting a little for more
                    rows = self._take(group, rows, time.monotonic() + self.timeout)
            try:
                self._run(group)
            finally:
                self._slots.release()

    def _padded_size(self, rows: int) -> int:
        return next((s for s in self.allowed if s >= rows), rows)

    def _run(self, group) -> None:
        if len(group) == 1:
            inputs, _, fut, _ = group[0]
            _settle(fut, lambda: self.target.run(inputs, validated=True))
            return
        try:
            merged = {k: np.concatenate([g[0][k] for g in group]) for k in group[0][0]}
            rows = sum(g[1] for g in group)
            size = self._padded_size(rows)
            if size > rows:
                merged = {k: pad_rows(v, size) for k, v in merged.items()}
            out = self.target.run(merged, validated=True)
        except Exception as exc:  # never let one request's failure become another's: rerun each alone
            log.warning(
                "a merged batch of %d requests failed (%s: %s); running them one by one",
                len(group),
                type(exc).__name__,
                exc,
            )
            for g in group:
                self._run([g])
            return
        start = 0
        for _, n, fut, _ in group:  # each caller gets its own rows (outputs without a batch axis whole)
            fut.set_result({k: v[start : start + n] if v.ndim and len(v) == size else v for k, v in out.items()})
            start += n


def _merge_key(inputs: dict[str, np.ndarray]) -> tuple:
    """Requests merge only when every input has the same name, dtype and per-row shape."""
    return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))


def _settle(fut: Future, fn) -> None:
    try:
        fut.set_result(fn())
    except BaseException as exc:  # the caller gets its own error (InvalidArgument, ModelFailure, ...)
        fut.set_exception(exc)
