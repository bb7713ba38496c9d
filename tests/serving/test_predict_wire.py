"""The server's zero-copy reading of a PredictRequest gives what protobuf's parser gives."""

from __future__ import annotations

import numpy as np
import pytest

from radpath.contract.tensor_codec import from_proto
from radpath.serving.predict_wire import WireError, split_request
from radpath.serving.protos import pb, to_proto


def _request(**inputs):
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = "glioma"
    req.model_spec.signature_name = "serving_default"
    req.model_spec.version.value = 3
    req.output_filter.append("probabilities")
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v if isinstance(v, pb.tensor_pb2.TensorProto) else to_proto(v))
    return req


def _decoded(raw: bytes) -> tuple:
    small, contents = split_request(raw)
    req = pb.predict_pb2.PredictRequest.FromString(small)
    return req, {k: from_proto(req.inputs[k], content=contents.get(k)) for k in req.inputs}


@pytest.mark.parametrize(
    "inputs",
    [
        {"image": np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)},
        {"image": np.zeros((1, 3), np.float32), "age_days": np.array([1000.0], np.float32)},
        {"image": pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_FLOAT, float_val=[1.5])},  # no tensor_content
        {"names": np.array([b"a", b"b"], dtype=object)},
        {},
    ],
)
def test_same_request_and_tensors_as_protobuf(inputs):
    req = _request(**inputs)
    raw = req.SerializeToString()
    got, arrays = _decoded(raw)
    want = pb.predict_pb2.PredictRequest.FromString(raw)
    assert got.model_spec == want.model_spec and list(got.output_filter) == list(want.output_filter)
    assert set(got.inputs) == set(want.inputs)
    for k in want.inputs:
        assert got.inputs[k].dtype == want.inputs[k].dtype and got.inputs[k].tensor_shape == want.inputs[k].tensor_shape
        np.testing.assert_array_equal(arrays[k], from_proto(want.inputs[k]))


def test_the_tensor_bytes_are_not_copied():
    x = np.arange(4096, dtype=np.float32).reshape(1, 4096)
    raw = _request(image=x).SerializeToString()
    _, contents = split_request(raw)
    assert contents["image"].obj is raw  # a view into the received buffer
    np.testing.assert_array_equal(np.frombuffer(contents["image"], np.float32), x.ravel())


def test_a_repeated_key_and_repeated_content_follow_protobufs_last_one_wins():
    a, b = _request(image=np.ones((1, 2), np.float32)), _request(image=np.full((1, 2), 7.0, np.float32))
    raw = a.SerializeToString() + b.SerializeToString()  # concatenated messages merge
    got, arrays = _decoded(raw)
    want = pb.predict_pb2.PredictRequest.FromString(raw)
    np.testing.assert_array_equal(arrays["image"], from_proto(want.inputs["image"]))
    assert arrays["image"].tolist() == [[7.0, 7.0]]
    later_without = _request(image=pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_FLOAT, float_val=[2.0]))
    raw = a.SerializeToString() + later_without.SerializeToString()
    got, _ = _decoded(raw)
    small, contents = split_request(raw)
    assert "image" not in contents and list(got.inputs["image"].float_val) == [2.0]


@pytest.mark.parametrize("raw", [b"\x12\xff", b"\x12\x05ab", b"\x0b", b"\x80"])
def test_malformed_bytes_are_left_to_protobuf(raw):
    with pytest.raises(WireError):
        split_request(raw)


def test_the_clients_request_bytes_are_a_predict_request():
    """The client writes the images straight into the wire message (one copy); protobuf reads it
    back as the same request, and so does the server's zero-copy reader."""
    from radpath.client.grpc_client import predict_request_bytes
    from radpath.contract.tensor_codec import to_proto as client_proto
    from radpath.contract.tfs_api import serving_apis_pb2 as apis

    x = np.random.default_rng(1).normal(size=(3, 8, 8, 4)).astype("<f4")
    req = apis.PredictRequest()
    req.model_spec.name = "glioma"
    req.output_filter.append("probabilities")
    req.inputs["age_days"].CopyFrom(client_proto(np.array([1.0, 2.0, 3.0], np.float32)))
    raw = predict_request_bytes(req, "image", x)
    parsed = pb.predict_pb2.PredictRequest.FromString(raw)
    assert parsed.model_spec.name == "glioma" and list(parsed.output_filter) == ["probabilities"]
    np.testing.assert_array_equal(from_proto(parsed.inputs["image"]), x)
    np.testing.assert_array_equal(from_proto(parsed.inputs["age_days"]), [1.0, 2.0, 3.0])
    reference = apis.PredictRequest()
    reference.CopyFrom(req)
    reference.inputs["image"].CopyFrom(client_proto(x))
    assert pb.predict_pb2.PredictRequest.FromString(reference.SerializeToString()) == parsed
    _, arrays = _decoded(raw)
    np.testing.assert_array_equal(arrays["image"], x)
