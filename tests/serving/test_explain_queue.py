"""`explain` cannot starve Predict (issue 19, item 16): explain requests carry one row unless the
server allows more, run one at a time behind Predict on their own bounded queue, and a full queue
is refused at once (RESOURCE_EXHAUSTED) instead of holding the server's threads."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from radpath.contract.errors import InvalidArgument, Overloaded
from radpath.serving.explain_queue import ExplainQueue, PredictGate
from radpath.serving.protos import pb, to_proto
from tests.serving.conftest import start_server

IMAGE = (224, 224, 8)


def _request(rows: int, signature: str = ""):
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = "glioma"
    req.model_spec.signature_name = signature
    req.inputs["image"].CopyFrom(to_proto(np.random.default_rng(rows).normal(size=(rows, *IMAGE)).astype(np.float32)))
    return req


def test_predict_latency_stays_low_while_explain_requests_are_in_flight(model_base):
    server = start_server(model_base, explain={"max_rows": 1, "concurrency": 1, "max_waiting": 3})
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = pb.prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        predict, explain = _request(1), _request(1, "explain")
        stub.Predict(predict, timeout=60), stub.Predict(explain, timeout=60)  # warm both
        t = time.perf_counter()
        stub.Predict(explain, timeout=60)
        explain_s = time.perf_counter() - t
        alone = []
        for _ in range(15):
            t = time.perf_counter()
            stub.Predict(predict, timeout=60)
            alone.append(time.perf_counter() - t)

        outcomes, stop = [], threading.Event()

        def explain_flood():  # the attack: explain requests as fast as the server takes them
            while not stop.is_set():
                try:
                    stub.Predict(explain, timeout=120)
                    outcomes.append("OK")
                except grpc.RpcError as exc:
                    outcomes.append(exc.code().name)
                    time.sleep(0.01)

        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(explain_flood)
            time.sleep(max(0.5, 2 * explain_s))
            loaded = []
            for _ in range(15):
                t = time.perf_counter()
                stub.Predict(predict, timeout=60)
                loaded.append(time.perf_counter() - t)
                time.sleep(0.02)
            stop.set()
        # a 16-row explain request is refused, not run
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request(16, "explain"), timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 1 row" in info.value.details()
    finally:
        channel.close()
        server.stop()
    base, under = statistics.median(alone), statistics.median(loaded)
    print(
        f"\nbatch-1 Predict median {base * 1000:.1f} ms alone, {under * 1000:.1f} ms under an explain flood "
        f"(8 clients; one explain row {explain_s * 1000:.0f} ms; worst {max(loaded) * 1000:.0f} ms); "
        f"explain outcomes {sorted((o, outcomes.count(o)) for o in set(outcomes))}"
    )
    assert "OK" in outcomes and "RESOURCE_EXHAUSTED" in outcomes  # served, and the queue bounded
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}
    # at most one explain row shares the CPU with a Predict: never queued behind a backlog
    assert under < 3 * base + explain_s, (under, base, explain_s)
    assert max(loaded) < 2 * explain_s + 10 * base, (max(loaded), explain_s)


def test_explain_waits_for_predict_and_the_queue_is_bounded():
    gate = PredictGate()
    queue = ExplainQueue(gate, max_rows=2, concurrency=1, max_waiting=1, max_wait_s=5)
    with pytest.raises(InvalidArgument, match="at most 2 row"):
        queue.run(3, lambda: {})
    started, release = threading.Event(), threading.Event()
    ran = []

    def slow():
        started.set()
        release.wait(5)
        return {"n": 1}

    with ThreadPoolExecutor(4) as pool:
        with gate:  # a Predict in flight: explain must not start
            first = pool.submit(queue.run, 1, slow)
            time.sleep(0.2)
            assert not started.is_set()
            second = pool.submit(queue.run, 1, lambda: ran.append("second") or {})
            time.sleep(0.1)
            with pytest.raises(Overloaded, match="explain queue is full"):
                queue.run(1, lambda: {})  # one running (waiting for the gate) + one waiting: full
        assert started.wait(5)  # the Predict finished: explain starts
        release.set()
        assert first.result(5) == {"n": 1} and second.result(5) == {} and ran == ["second"]
    assert queue.run(1, lambda: {"again": True}) == {"again": True}  # slots all given back
