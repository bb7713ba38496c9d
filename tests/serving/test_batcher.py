import threading
import time

import numpy as np

from radpath.serving.batcher import Batcher


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


def test_unknown_or_impossible_parameters_are_refused():
    import pytest

    from radpath.serving.batcher import BatchingConfigError, check_parameters

    with pytest.raises(BatchingConfigError, match=r"\['pad_variable_length_inputs'\] are not supported"):
        check_parameters({"max_batch_size": 4, "pad_variable_length_inputs": 1})
    with pytest.raises(BatchingConfigError, match="num_batch_threads must be a whole number >= 1"):
        Batcher(Recorder(), num_batch_threads=0)
    with pytest.raises(BatchingConfigError, match="must increase and end at max_batch_size 8"):
        Batcher(Recorder(), max_batch_size=8, allowed_batch_sizes=[1, 4])


def test_num_batch_threads_are_started():
    b = Batcher(Recorder(), num_batch_threads=3)
    names = {t.name for t in threading.enumerate()}
    assert {f"batcher-m-1-{i}" for i in range(3)} <= names and b is not None


def test_full_queue_is_unavailable_not_unbounded():
    """max_enqueued_batches x max_batch_size rows may wait; beyond that a request is refused."""
    from radpath.contract.errors import Unavailable

    b = Batcher(Recorder(delay=0.5), max_batch_size=2, max_enqueued_batches=1, batch_timeout_micros=0)
    outcomes = []

    def call(i):
        try:
            b.submit({"image": np.full((1, 5), float(i), np.float32)})
            outcomes.append("ok")
        except Unavailable:
            outcomes.append("full")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("full") >= 1 and outcomes.count("ok") >= 2, outcomes


class Poisoned(Recorder):
    """Fails any batch holding a row whose first value is negative, as a bad input would."""

    def run(self, inputs, validated=False):
        if (inputs["image"][:, 0] < 0).any():
            raise ValueError("poisoned batch")
        return super().run(inputs, validated)


def test_a_failing_request_never_fails_the_others_in_its_batch():
    target = Poisoned(delay=0.02)
    b = Batcher(target, max_batch_size=16, batch_timeout_micros=100_000, allowed_batch_sizes=[1, 2, 4, 8, 16])
    results = {}

    def call(i):
        try:
            results[i] = b.submit({"image": np.full((1, 5), float(i) if i != 3 else -1.0, np.float32)})
        except ValueError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results[3], ValueError)
    for i in set(range(8)) - {3}:
        np.testing.assert_array_equal(results[i]["probabilities"], np.full((1, 3), 2.0 * i, np.float32))


def test_requests_with_different_row_shapes_are_not_merged():
    target = Recorder(delay=0.05)
    b = Batcher(target, max_batch_size=16, batch_timeout_micros=100_000)
    out = {}

    def call(i):
        out[i] = b.submit({"image": np.zeros((1, 5 + i % 2), np.float32)})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r["probabilities"].shape == (1, 3) for r in out.values())
