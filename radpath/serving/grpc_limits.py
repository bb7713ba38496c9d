"""Bounds on the memory the gRPC front end spends on incoming requests (issue 19; REST's are in `rest`).

gRPC's sync server reads a request's message into Python only when one of its `GRPC_WORKERS`
threads takes the call, and refuses a message over the server's receive limit without handing it
to Python. So at most `GRPC_WORKERS` messages of at most `max_request_bytes` are held by Python at
once; calls waiting for a worker hold at most their HTTP/2 flow-control window in gRPC's core, and
beyond `MAX_CONCURRENT_RPCS` calls in all a new call is refused at once (RESOURCE_EXHAUSTED). The
receive limit is what the largest valid request needs (the client's 64 MB cap is for any server,
this one knows its batch limit): `max_rows` images, one more so that a batch one row too large is
still answered with the INVALID_ARGUMENT that names the limit, and 1 MiB for the rest of the message.

Past reading, a request's bytes are copied (the model's input tensor, a merged batch, padding), so
decoding and running hold a `RequestBudget` share of the request's size: at most
`BUDGET_REQUESTS` largest-size requests are decoded or run at once, first come first served; small
requests (a batch-1 input is 1.6 MB) rarely wait.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from radpath.contract.errors import Unavailable
from radpath.contract.model_io import IMAGE_SHAPE, INPUT_DTYPE

from . import GRPC_MAX_MESSAGE_BYTES

GRPC_WORKERS = 16
"""Threads of the gRPC server: calls handled (and messages held) at once."""
MAX_CONCURRENT_RPCS = 64
"""Calls running or waiting for a worker; more are refused at once with RESOURCE_EXHAUSTED."""
BUDGET_REQUESTS = 2
"""Largest-size requests decoded or run at once (the rest wait their turn, already read): two, as
the batcher runs two batches at once (batching.config num_batch_threads) on these 2 cores.
Measured (tests/bench/bench_serving.py section 6, 2 cores): 32 concurrent 16-row requests (24.5 MB
each) took the server to +1.07 to +1.26 GB peak RSS (3 runs), +1.43 and +1.55 GB before these bounds;
32 requests of 60 MB (over the limit) to +0.05 GB, +0.9 and +1.3 GB before."""
BUDGET_WAIT_S = 60.0
"""How long a request waits for its share of the budget before it is answered UNAVAILABLE."""


def max_request_bytes(max_rows: int) -> int:
    """The server's receive limit: `max_rows` + 1 model inputs and 1 MiB for the rest of the message
    (names, shapes, ages), never over the client's GRPC_MAX_MESSAGE_BYTES."""
    row = int(np.prod(IMAGE_SHAPE)) * np.dtype(INPUT_DTYPE).itemsize
    return min(GRPC_MAX_MESSAGE_BYTES, (max_rows + 1) * row + 2**20)


class RequestBudget:
    """A semaphore counted in bytes for threads, first come first served: a large request waiting
    at the head is not overtaken by small ones (it would starve). `peak` is the most bytes ever
    held at once (tests and benchmarks read it)."""

    def __init__(self, limit: int):
        self.limit, self.used, self.peak = limit, 0, 0
        self._cond = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()

    def acquire(self, n: int, timeout: float = BUDGET_WAIT_S) -> int:
        """Wait for `n` bytes (at most the whole limit) and return what was taken, for `release`.
        Raises Unavailable after `timeout` seconds."""
        n = min(n, self.limit)
        me = object()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._queue.append(me)
            try:
                while self._queue[0] is not me or self.used + n > self.limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Unavailable(
                            f"the server is busy with large requests ({self.used} bytes being decoded or run); "
                            "retry later"
                        )
                    self._cond.wait(left)
            finally:
                self._queue.remove(me)
                self._cond.notify_all()  # the next in line may fit now (or the head left)
            self.used += n
            self.peak = max(self.peak, self.used)
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()
