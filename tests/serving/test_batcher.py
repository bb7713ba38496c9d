import threading
import time

import numpy as np

from serving.batcher import Batcher


class Recorder:
    name, version = "m", 1

    def __init__(self, delay=0.05):
        self.sizes, self.delay = [], delay

    def run(self, inputs, validated=False):
        x = inputs["image"]
        self.sizes.append(len(x))
        time.sleep(self.delay)
        return {"probabilities": x[:, :3] * 2}


def test_concurrent_requests_merge_and_pad_to_allowed_sizes():
    target = Recorder()
    b = Batcher(target, max_batch_size=16, batch_timeout_micros=50000, allowed_batch_sizes=[1, 2, 4, 8, 16])
    results = {}

    def call(i):
        results[i] = b.submit({"image": np.full((1, 5), float(i), np.float32)})
    threads = [threading.Thread(target=call, args=(i,)) for i in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s in (1, 2, 4, 8, 16) for s in target.sizes), target.sizes
    assert sum(target.sizes) >= 7 and len(target.sizes) < 7  # merged, padded
    for i, r in results.items():
        np.testing.assert_array_equal(r["probabilities"], np.full((1, 3), 2.0 * i, np.float32))


def test_a_lone_request_does_not_wait_for_the_timeout():
    b = Batcher(Recorder(delay=0), max_batch_size=16, batch_timeout_micros=2_000_000)
    t0 = time.perf_counter()
    b.submit({"image": np.zeros((1, 5), np.float32)})
    assert time.perf_counter() - t0 < 1.0
