import numpy as np
import pytest

from radpath.contract.tensor_codec import TensorCodecError, fill_tensor, from_proto, to_proto
from radpath.contract.tfs_api import serving_apis_pb2 as apis
from radpath.contract.tfs_api import tensor_pb2


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8, np.bool_])
def test_round_trip(dtype):
    x = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    y = from_proto(to_proto(x))
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_strings_and_in_place_fill():
    req = apis.PredictRequest()
    fill_tensor(req.inputs["image"], np.ones((2, 2), np.float32))
    assert req.inputs["image"].dtype == tensor_pb2.DT_FLOAT and [
        d.size for d in req.inputs["image"].tensor_shape.dim
    ] == [2, 2]
    s = np.array([b"A", "G"], dtype=object)
    assert list(from_proto(to_proto(s))) == [b"A", b"G"]


def test_typed_value_fields_and_broadcast():
    t = tensor_pb2.TensorProto(dtype=tensor_pb2.DT_FLOAT, float_val=[3.0])
    t.tensor_shape.dim.add(size=2)
    t.tensor_shape.dim.add(size=2)
    np.testing.assert_array_equal(from_proto(t), np.full((2, 2), 3.0, np.float32))
    with pytest.raises(TensorCodecError, match="more than the 3 allowed"):
        from_proto(t, max_elements=3)
    h = tensor_pb2.TensorProto(dtype=tensor_pb2.DT_HALF, half_val=[int(np.float16(1.5).view(np.uint16))])
    assert from_proto(h).tolist() == 1.5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: setattr(t, "tensor_content", b"123"), "tensor_content holds 3 bytes"),
        (lambda t: setattr(t, "dtype", tensor_pb2.DT_INVALID), "unsupported tensor dtype"),
        (lambda t: t.tensor_shape.dim.add(size=-1), "negative dimension"),
    ],
)
def test_malformed_tensors_are_rejected(mutate, message):
    t = to_proto(np.zeros((2, 2), np.float32))
    mutate(t)
    with pytest.raises(TensorCodecError, match=message):
        from_proto(t)


def test_matches_tensorflow_both_ways():
    tf = pytest.importorskip("tensorflow")
    for x in (np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32), np.arange(6, dtype=np.int64)):
        assert to_proto(x).SerializeToString() == tf.make_tensor_proto(x).SerializeToString()
        np.testing.assert_array_equal(from_proto(tf.make_tensor_proto(x)), x)
        np.testing.assert_array_equal(
            tf.make_ndarray(tf.make_tensor_proto(x).FromString(to_proto(x).SerializeToString())), x
        )
