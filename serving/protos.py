"""TensorFlow Serving's protos without importing TensorFlow.

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.*_pb2`, and importing anything
under `tensorflow` runs `tensorflow/__init__.py`, which loads the whole framework: about 5 s and
1 GB, for a client that only needs a few protobuf classes. When TensorFlow is not imported yet,
the `tensorflow` package is stood in by an empty package object over the same folder while the
proto modules load (0.1 s), then removed, so a later `import tensorflow` (e.g. in a process that
also trains or serves) still gets the real one and reuses the same proto modules.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import threading
import types

_lock = threading.Lock()


def _load():
    if "tensorflow" in sys.modules:
        return _import_all()
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package (which ships the TensorFlow Serving protos) is not installed")
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
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                         predict_pb2, prediction_service_pb2_grpc)
    return types.SimpleNamespace(
        tensor_pb2=tensor_pb2, tensor_shape_pb2=tensor_shape_pb2, types_pb2=types_pb2,
        get_model_metadata_pb2=get_model_metadata_pb2, get_model_status_pb2=get_model_status_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc, predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc)


with _lock:
    pb = _load()


# ---------------------------------------------------------------- numpy <-> TensorProto
def fill_proto(proto, array: np.ndarray) -> None:
    """Write a float32 array into an existing TensorProto field (no intermediate message: saves a
    copy of the 6.4 MB a batch of 8 weighs)."""
    proto.dtype = pb.types_pb2.DT_FLOAT
    for s in array.shape:
        proto.tensor_shape.dim.add(size=s)
    proto.tensor_content = np.ascontiguousarray(array, dtype=np.float32).tobytes()


def to_proto(array: np.ndarray):
    """TensorProto from numpy: float32 straight from the buffer (byte-identical to
    tf.make_tensor_proto), strings as string_val."""
    shape = pb.tensor_shape_pb2.TensorShapeProto(dim=[pb.tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape])
    if array.dtype == np.float32:
        return pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_FLOAT, tensor_shape=shape,
                                         tensor_content=np.ascontiguousarray(array).tobytes())
    if array.dtype.kind in "OSU":
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_STRING, tensor_shape=shape, string_val=values)
    import tensorflow as tf  # other dtypes: rare here, let TensorFlow do it
    return tf.make_tensor_proto(array)


def from_proto(proto) -> np.ndarray:
    """numpy from a TensorProto; float32 and strings without TensorFlow, others via tf.make_ndarray."""
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype == pb.types_pb2.DT_FLOAT:
        if proto.tensor_content:
            data = np.frombuffer(proto.tensor_content, np.float32)
        else:
            data = np.array(proto.float_val, np.float32)
            if data.size == 1 and int(np.prod(shape)) > 1:
                data = np.full(int(np.prod(shape)), data[0], np.float32)
        if data.size != int(np.prod(shape)):
            raise ValueError(f"tensor holds {data.size} values for shape {shape}")
        return data.reshape(shape)
    if proto.dtype == pb.types_pb2.DT_STRING:
        return np.array(list(proto.string_val), dtype=object).reshape(shape)
    import tensorflow as tf
    return tf.make_ndarray(proto)
