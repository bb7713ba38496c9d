import subprocess
import sys

import numpy as np
import tensorflow as tf

from radpath.serving.protos import from_proto, to_proto


def test_float_proto_is_byte_identical_to_tensorflow():
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 8)).astype(np.float32)
    assert to_proto(x).SerializeToString() == tf.make_tensor_proto(x).SerializeToString()
    np.testing.assert_array_equal(from_proto(tf.make_tensor_proto(x)), x)


def test_strings_and_other_dtypes_round_trip():
    s = np.array([b"A", b"G"], dtype=object)
    assert list(from_proto(to_proto(s))) == [b"A", b"G"]
    assert list(tf.make_ndarray(to_proto(s))) == [b"A", b"G"]
    i = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_array_equal(from_proto(to_proto(i)), i)
    scalar_fill = tf.make_tensor_proto(np.float32(3.0), shape=[2, 2])  # float_val holding one value
    np.testing.assert_array_equal(from_proto(scalar_fill), np.full((2, 2), 3.0, np.float32))


def test_client_does_not_import_tensorflow():
    code = (
        "import sys, radpath.client.grpc_client; print('tensorflow' in sys.modules, 'tensorflow.python' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
