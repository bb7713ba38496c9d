"""`explain` requests on their own bounded queue, behind Predict.

An explain row costs integrated gradients (16 forward and backward passes): issue 19 measured
10.5 s for a 16-row request against 15 ms for a batch-1 Predict, and eight such requests made
batch-1 Predict take 9.5-21.8 s. So an explain request:
- carries at most `max_rows` rows (1 unless the server is started with more), else INVALID_ARGUMENT;
- runs at most `concurrency` at a time, with at most `max_waiting` more waiting for a turn;
  beyond that it is refused at once with RESOURCE_EXHAUSTED / 429 (`Overloaded`), so waiting explain
  requests never hold more than a few of the front ends' threads;
- starts only while no Predict is in flight (`PredictGate`): Predict is never queued behind it.
  Under unbroken Predict traffic an explain request waits (up to `max_wait_s`, then `Unavailable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from radpath.contract.errors import InvalidArgument, Overloaded, Unavailable


class PredictGate:
    """Counts Predict requests in flight; lets low-priority work wait until there are none."""

    def __init__(self):
        self._busy = 0
        self._idle = threading.Condition()

    def __enter__(self) -> PredictGate:
        with self._idle:
            self._busy += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._idle:
            self._busy -= 1
            if not self._busy:
                self._idle.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        """True once no Predict is in flight; False if that did not happen before `deadline`."""
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True


class ExplainQueue:
    def __init__(
        self,
        gate: PredictGate,
        max_rows: int = 1,
        concurrency: int = 1,
        max_waiting: int = 4,
        max_wait_s: float = 60.0,
    ):
        if min(max_rows, concurrency) < 1 or max_waiting < 0:
            raise ValueError("explain max_rows and concurrency must be >= 1, max_waiting >= 0")
        self.gate, self.max_rows, self.concurrency = gate, max_rows, concurrency
        self.max_waiting, self.max_wait_s = max_waiting, max_wait_s
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._slots = threading.Semaphore(concurrency)

    def run(self, rows: int, fn: Callable[[], dict]) -> dict:
        """Run `fn` (one explain request of `rows` rows) when its turn comes."""
        if rows > self.max_rows:
            raise InvalidArgument(
                f"explain takes at most {self.max_rows} row(s) per request on this server, got {rows}; "
                "send the rows one request at a time (or start the server with a larger --explain-max-rows)"
            )
        with self._lock:
            if self._admitted >= self.concurrency + self.max_waiting:
                raise Overloaded(
                    f"the explain queue is full ({self.concurrency} running, {self.max_waiting} waiting); "
                    "retry later. Predict is not affected"
                )
            self._admitted += 1
        try:
            deadline = time.monotonic() + self.max_wait_s
            if not self._slots.acquire(timeout=self.max_wait_s):
                raise Unavailable(f"explain waited {self.max_wait_s:.0f} s for a turn; retry later")
            try:
                if not self.gate.wait_idle(deadline):
                    raise Unavailable(
                        f"explain waited {self.max_wait_s:.0f} s for a pause in Predict traffic; retry later"
                    )
                return fn()
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1
