"""The exported model must run on the pinned TF Serving image (XlaCallModule version check)."""

import tensorflow as tf

from radpath.serving import compat


def test_exported_model_runs_on_the_pinned_serving_image(model_base):
    versions = compat.xla_call_module_versions(model_base / "glioma" / "1")
    assert versions, "jax2tf export should hold an XlaCallModule op"
    assert max(versions) <= compat.MAX_XLA_CALL_MODULE_VERSION[compat.SERVING_TENSORFLOW]
    exporting = tuple(int(x) for x in tf.__version__.split(".")[:2])
    assert exporting <= compat.SERVING_TENSORFLOW, (
        f"exporting with TensorFlow {tf.__version__}, newer than the serving image's "
        f"{compat.SERVING_TENSORFLOW}: bump SERVING_TAG and the k8s manifests"
    )


def test_exported_model_is_lowered_for_cpu_and_cuda(model_base):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model_base / "glioma" / "1" / "saved_model.pb").read_bytes())
    platforms = {
        p
        for f in sm.meta_graphs[0].graph_def.library.function
        for n in f.node_def
        if n.op == "XlaCallModule"
        for p in n.attr["platforms"].list.s
    }
    assert platforms == {b"CPU", b"CUDA"}
