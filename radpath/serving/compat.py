"""Which TensorFlow exports our SavedModels and which TF Serving image can run them.

jax2tf puts the whole model in one `XlaCallModule` op; a server can run it only if its TensorFlow
supports that op's serialization version. Export and serving must therefore move together:

| export stack (pyproject pins)      | XlaCallModule version written | serving image                     |
|------------------------------------|-------------------------------|-----------------------------------|
| tensorflow 2.21, jax 0.10          | 10                            | tensorflow/serving:2.21.0(-gpu)   |

TF Serving 2.21.0 is built on TensorFlow 2.21, whose maximum supported XlaCallModule version is 10
(`tf2xla.python.xla.call_module_maximum_supported_version()`). tests/k8s checks an exported model
against this table and the manifests against these tags; bump all three together.
"""

from __future__ import annotations

from pathlib import Path

SERVING_IMAGE = "tensorflow/serving"
SERVING_TAG = "2.21.0"
SERVING_GPU_TAG = "2.21.0-gpu"
SERVING_TENSORFLOW = (2, 21)
MAX_XLA_CALL_MODULE_VERSION = {(2, 21): 10}
"""Highest XlaCallModule version each serving TensorFlow (major, minor) can run."""


def xla_call_module_versions(saved_model_dir: str | Path) -> set[int]:
    """Versions of every XlaCallModule op in a SavedModel's graph and function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    found = set()
    for mg in sm.meta_graphs:
        nodes = list(mg.graph_def.node) + [n for f in mg.graph_def.library.function for n in f.node_def]
        found |= {n.attr["version"].i for n in nodes if n.op == "XlaCallModule"}
    return found
