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
