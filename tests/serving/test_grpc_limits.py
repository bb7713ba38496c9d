"""The gRPC front end's memory bounds (issue 19, the gRPC twin of REST's item 15): a message larger
than the largest valid request is refused by gRPC before Python sees it, and concurrent large
requests are decoded and run within a byte budget, first come first served."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

import radpath.serving.local_server as local_server
import radpath.serving.rest as rest
from radpath.client.grpc_client import predict_request_bytes
from radpath.contract.errors import Unavailable
from radpath.contract.model_io import IMAGE_SHAPE
from radpath.contract.tfs_api import serving_apis_pb2 as apis
from radpath.serving import GRPC_MAX_MESSAGE_BYTES
from radpath.serving.grpc_limits import RequestBudget, max_request_bytes
from tests.serving.conftest import start_server

ROW_BYTES = int(np.prod(IMAGE_SHAPE)) * 4  # one float32 model input: 1.6 MB


@pytest.fixture(scope="module")
def server(model_base):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(local_server, "BUDGET_REQUESTS", 1)  # one largest-size request decoded or run at a time
        s = start_server(model_base)
    yield s
    s.stop()
    rest._trim_memory()  # hand the tests' large requests back to the OS: later tests measure RSS growth


def _predict_raw(server, rows: int) -> tuple[str, str]:
    req = apis.PredictRequest()
    req.model_spec.name = "glioma"
    x = np.random.default_rng(rows).normal(size=(rows, *IMAGE_SHAPE)).astype(np.float32)
    raw = predict_request_bytes(req, "image", x)
    options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        try:
            channel.unary_unary("/tensorflow.serving.PredictionService/Predict")(raw, timeout=120)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    return "OK", ""


def _predicts_seen(server) -> int:
    return sum(n for (api, _, _), n in server.metrics.counts.items() if api == "predict")


def test_receive_limit_is_the_largest_valid_request():
    assert max_request_bytes(16) == 17 * ROW_BYTES + 2**20  # 28.3 MB, not the client's 64 MB
    assert max_request_bytes(1000) == GRPC_MAX_MESSAGE_BYTES  # never over the client's cap


def test_a_message_over_the_limit_is_refused_before_python_reads_it(server):
    seen = _predicts_seen(server)
    code, details = _predict_raw(server, 19)  # 30.5 MB: over 28.3 MB, under the client's 64 MB
    assert code == "RESOURCE_EXHAUSTED" and "larger than max" in details, details
    assert _predicts_seen(server) == seen  # the handler never ran: no Python copy of the message
    code, details = _predict_raw(server, 17)  # one row over: still read, and told the limit
    assert code == "INVALID_ARGUMENT" and "batch of 17 rows; this server takes 1..16" in details, details
    assert _predict_raw(server, 16) == ("OK", "")  # the largest valid request still passes


def test_concurrent_large_requests_are_decoded_one_budget_at_a_time(server):
    """Four 16-row requests (25.7 MB each) at once with a budget of one largest request: all are
    answered, and never more than one request's bytes were being decoded or run at once."""
    budget = server.request_budget
    assert budget.limit == max_request_bytes(16)
    budget.peak = 0
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: _predict_raw(server, 16)[0], range(4)))
    assert codes == ["OK"] * 4
    assert 16 * ROW_BYTES < budget.peak <= budget.limit < 2 * 16 * ROW_BYTES, budget.peak
    assert budget.used == 0  # all given back


def test_request_budget_is_first_come_first_served_and_times_out():
    budget = RequestBudget(100)
    order: list[str] = []
    assert budget.acquire(80) == 80

    def take(name: str, n: int) -> None:
        budget.acquire(n)
        order.append(name)

    big = threading.Thread(target=take, args=("big", 90))
    big.start()
    time.sleep(0.05)
    small = threading.Thread(target=take, args=("small", 10))
    small.start()
    time.sleep(0.05)
    assert order == [] and budget.used == 80  # the small one fits but waits its turn behind the big one
    budget.release(80)
    big.join(5)
    small.join(5)
    assert order == ["big", "small"] and budget.used == 100 and budget.peak == 100
    with pytest.raises(Unavailable, match="busy with large requests"):
        budget.acquire(1, timeout=0.05)
    budget.release(100)
    assert budget.acquire(500) == 100 and budget.used == 100  # larger than the limit: takes the whole budget
