"""TensorFlow Serving's own protos for the built-in server, loaded without importing TensorFlow.

The server answers with tensorflow-serving-api's message classes (its gRPC servicers, the
SignatureDef of a loaded SavedModel and the warm-up records are TensorFlow's). Clients use
`contract.tfs_api` instead, which needs no TensorFlow at all; numpy <-> TensorProto for both is
`contract.tensor_codec`.

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.*_pb2`, and importing anything
under `tensorflow` runs `tensorflow/__init__.py` (about 5 s and 1 GB). When TensorFlow is not
imported yet, the `tensorflow` package is stood in by an empty package object over the same folder
while the proto modules load (0.1 s), then removed, so a later `import tensorflow` still gets the
real one and reuses the same proto modules. Module import runs once (Python's import lock), so no
lock of our own is needed.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np

from radpath.contract.tensor_codec import fill_tensor as fill_tensor  # re-exported for the server
from radpath.contract.tensor_codec import from_proto as from_proto


def _load():
    if "tensorflow" in sys.modules:
        return _import_all()
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the built-in server needs tensorflow and tensorflow-serving-api: pip install 'radpath[serve]'"
        )
    stub = types.ModuleType("tensorflow")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__spec__ = spec
    sys.modules["tensorflow"] = stub
    try:
        return _import_all()
    finally:
        if sys.modules.get("tensorflow") is stub:
            del sys.modules["tensorflow"]


def _import_all():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    return types.SimpleNamespace(
        tensor_pb2=tensor_pb2,
        tensor_shape_pb2=tensor_shape_pb2,
        types_pb2=types_pb2,
        get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc,
        predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc,
    )


pb = _load()


def to_proto(array: np.ndarray):
    """TensorFlow's TensorProto holding `array` (float32 byte-identical to tf.make_tensor_proto)."""
    return fill_tensor(pb.tensor_pb2.TensorProto(), array)
