"""Server-side batching of concurrent Predict requests, as TF Serving's --enable_batching does.

Requests queue up; one worker thread per served version takes everything waiting (up to
`max_batch_size` rows, waiting at most `batch_timeout_micros` for more once the first arrives),
concatenates along the batch axis, runs the model once and hands each caller its rows. Requests
whose own batch exceeds `max_batch_size` run alone.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np


class Batcher:
    def __init__(self, target, max_batch_size: int = 16, batch_timeout_micros: int = 5000, **_ignored):
        self.target = target
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, name=f"batcher-{target.name}-{target.version}", daemon=True).start()

    def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        if rows >= self.max_batch_size:
            return self.target.run(inputs)
        fut: Future = Future()
        self._queue.put((inputs, rows, fut))
        return fut.result()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            group, rows = [first], first[1]
            deadline = time.monotonic() + self.timeout
            while rows < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if rows + item[1] > self.max_batch_size or set(item[0]) != set(first[0]):
                    self._run([item])  # does not fit this batch: run it on its own
                    continue
                group.append(item)
                rows += item[1]
            self._run(group)

    def _run(self, group) -> None:
        try:
            if len(group) == 1:
                inputs, _, fut = group[0]
                fut.set_result(self.target.run(inputs))
                return
            merged = {k: np.concatenate([g[0][k] for g in group]) for k in group[0][0]}
            out = self.target.run(merged)
            start = 0
            for _, rows, fut in group:
                fut.set_result({k: v[start:start + rows] for k, v in out.items()})
                start += rows
        except Exception as exc:  # each caller gets the error (e.g. InvalidArgument)
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
