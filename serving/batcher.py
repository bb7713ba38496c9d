"""Server-side batching of concurrent Predict requests, as TF Serving's --enable_batching does.

Requests queue up; one worker thread per served version takes everything already waiting and, when
that shows concurrent traffic, waits up to `batch_timeout_micros` for more (up to `max_batch_size`
rows); a lone request runs at once instead of paying the timeout. The merged batch is padded up to
the next of `allowed_batch_sizes` (as TF Serving does), because every new batch size costs the
jax2tf module a compilation; those sizes are compiled ahead by the model's warm-up requests.
Requests whose own batch reaches `max_batch_size` run alone.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Sequence

import numpy as np


class Batcher:
    def __init__(self, target, max_batch_size: int = 16, batch_timeout_micros: int = 5000,
                 allowed_batch_sizes: Sequence[int] = (), **_ignored):
        self.target = target
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.allowed = sorted(allowed_batch_sizes) or [max_batch_size]
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, name=f"batcher-{target.name}-{target.version}", daemon=True).start()

    def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        if rows >= self.max_batch_size:
            return self.target.run(inputs)
        fut: Future = Future()
        self._queue.put((inputs, rows, fut))
        return fut.result()

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
            if rows + item[1] > self.max_batch_size or set(item[0]) != set(group[0][0]):
                self._run([item])  # does not fit this batch: run it on its own
                continue
            group.append(item)
            rows += item[1]
        return rows

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            group = [first]
            rows = self._take(group, first[1], None)
            if len(group) > 1:  # concurrent traffic: worth waiting a little for more
                rows = self._take(group, rows, time.monotonic() + self.timeout)
            self._run(group)

    def _padded_size(self, rows: int) -> int:
        return next((s for s in self.allowed if s >= rows), rows)

    def _run(self, group) -> None:
        try:
            if len(group) == 1:
                inputs, _, fut = group[0]
                fut.set_result(self.target.run(inputs))
                return
            merged = {k: np.concatenate([g[0][k] for g in group]) for k in group[0][0]}
            rows = sum(g[1] for g in group)
            pad = self._padded_size(rows) - rows
            if pad:
                merged = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in merged.items()}
            out = self.target.run(merged)
            start = 0
            for _, n, fut in group:
                fut.set_result({k: v[start:start + n] for k, v in out.items()})
                start += n
        except Exception as exc:  # each caller gets the error (e.g. InvalidArgument)
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
