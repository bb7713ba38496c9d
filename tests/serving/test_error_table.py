"""One error table (contract.errors) for both front ends of the built-in server: every error class
in it, raised while serving, reaches a gRPC client as the table's status code and a REST client as
the table's HTTP status, with the same one-line message; a few real errors (unknown model, bad
shape, too large) as well, provoked without stand-ins."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from radpath.contract.errors import (
    ERROR_STATUS,
    INTERNAL,
    CaseError,
    RadPathError,
    TooLarge,
    public_message,
    status_of,
)
from radpath.serving.protos import pb, to_proto
from tests.serving.conftest import start_server

IMAGE = (224, 224, 8)


@pytest.fixture(scope="module")
def server(model_base):
    s = start_server(model_base)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}",
        options=[("grpc.max_send_message_length", 80 << 20), ("grpc.max_receive_message_length", 80 << 20)],
    )
    yield pb.prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _grpc(stub, model="glioma", image=None, signature=""):
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    req.inputs["image"].CopyFrom(to_proto(np.zeros((1, *IMAGE), np.float32) if image is None else image))
    try:
        stub.Predict(req, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _rest(server, model="glioma", body=None):
    if body is None:
        body = json.dumps({"instances": np.zeros((1, *IMAGE), np.float32).tolist()}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}/v1/models/{model}:predict", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]


def _example(cls: type[BaseException]) -> BaseException:
    return cls("CASE-1", "probe problem") if issubclass(cls, CaseError) else cls("probe message")


EXAMPLES = [_example(cls) for cls in ERROR_STATUS] + [RuntimeError("a bug with internals /secret/path")]


def test_the_table_covers_the_front_ends_codes():
    for status in [*ERROR_STATUS.values(), INTERNAL]:
        assert status.grpc in grpc.StatusCode.__members__, status
        assert 400 <= status.http < 600 and status.exit == 1
    assert status_of(RuntimeError()) == INTERNAL and status_of(KeyError()) == INTERNAL


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_both_front_ends_answer_an_error_from_the_table(server, stub, monkeypatch, exc):
    def failing(lv, inputs):
        raise exc

    monkeypatch.setattr(server, "run", failing)
    status = status_of(exc)
    code, details = _grpc(stub)
    http, error = _rest(server)
    assert code == grpc.StatusCode[status.grpc] and http == status.http, (code, http)
    assert details == error == public_message(exc)
    if not isinstance(exc, RadPathError):  # a bug: its class name only, never its message
        assert details == "internal error (RuntimeError)"


def test_real_errors_get_the_same_answer_on_both(server, stub):
    # unknown model
    code, details = _grpc(stub, model="nope")
    http, error = _rest(server, model="nope")
    assert (code, http) == (grpc.StatusCode.NOT_FOUND, 404) and "nope" in details and "nope" in error
    # a bad shape
    code, details = _grpc(stub, image=np.zeros((1, 100, 100, 4), np.float32))
    http, error = _rest(server, body=json.dumps({"instances": [[[[0.0] * 4] * 100] * 100]}).encode())
    assert (code, http) == (grpc.StatusCode.INVALID_ARGUMENT, 400)
    assert "must have shape [None, 224, 224, 8]" in details and "must have shape [None, 224, 224, 8]" in error
    # an explain request over the row cap
    two = np.zeros((2, *IMAGE), np.float32)
    code, details = _grpc(stub, image=two, signature="explain")
    http, error = _rest(server, body=json.dumps({"signature_name": "explain", "instances": two.tolist()}).encode())
    assert (code, http) == (grpc.StatusCode.INVALID_ARGUMENT, 400)
    assert "at most 1 row" in details and "at most 1 row" in error


def test_too_large_is_resource_exhausted_and_413(server, stub):
    """gRPC core refuses a message over the limit itself; REST refuses a declared body over it
    before reading it. Both are the table's TooLarge."""
    big = np.zeros((1, 17 * 1024 * 1024), np.float32)  # 68 MB > the 64 MiB limit
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = "glioma"
    req.inputs["image"].CopyFrom(to_proto(big))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(req, timeout=60)
    del req, big
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as s:
        s.sendall(b"POST /v1/models/glioma:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 70000000\r\n\r\n")
        head = s.recv(65536)
    expected = ERROR_STATUS[TooLarge]
    assert info.value.code() == grpc.StatusCode[expected.grpc], info.value.code()
    assert head.startswith(f"HTTP/1.1 {expected.http} ".encode()), head[:100]
