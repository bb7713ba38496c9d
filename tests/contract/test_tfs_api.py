"""Our minimal TF Serving protos against tensorflow-serving-api's: same names, same field numbers and
types, and messages that cross both ways on the wire. Skipped where tensorflow-serving-api is absent
(the light client install); the generated modules must match a fresh generation."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radpath.contract.tensor_codec import fill_tensor, from_proto
from radpath.contract.tfs_api import serving_apis_pb2 as apis
from radpath.contract.tfs_api import serving_apis_pb2_grpc as services
from radpath.contract.tfs_api import tensor_pb2

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tfs():
    pytest.importorskip("tensorflow_serving")
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import model_pb2

    from radpath.serving.protos import pb  # TF Serving's own protos, without importing all of TensorFlow

    return pb, meta_graph_pb2, model_pb2


def _pairs(tfs):
    pb, meta, model = tfs
    return [
        (tensor_pb2.TensorProto, pb.tensor_pb2.TensorProto),
        (tensor_pb2.TensorShapeProto, pb.tensor_shape_pb2.TensorShapeProto),
        (tensor_pb2.TensorInfo, meta.TensorInfo),
        (tensor_pb2.SignatureDef, meta.SignatureDef),
        (apis.ModelSpec, model.ModelSpec),
        (apis.PredictRequest, pb.predict_pb2.PredictRequest),
        (apis.PredictResponse, pb.predict_pb2.PredictResponse),
        (apis.GetModelMetadataRequest, pb.get_model_metadata_pb2.GetModelMetadataRequest),
        (apis.GetModelMetadataResponse, pb.get_model_metadata_pb2.GetModelMetadataResponse),
        (apis.SignatureDefMap, pb.get_model_metadata_pb2.SignatureDefMap),
        (apis.GetModelStatusRequest, pb.get_model_status_pb2.GetModelStatusRequest),
        (apis.GetModelStatusResponse, pb.get_model_status_pb2.GetModelStatusResponse),
        (apis.ModelVersionStatus, pb.get_model_status_pb2.ModelVersionStatus),
    ]


def _check_fields(ours, theirs):
    assert ours.full_name == theirs.full_name
    for f in ours.fields:
        t = theirs.fields_by_name.get(f.name)
        assert t is not None, f"{ours.full_name}.{f.name} is not in TF Serving's message"
        assert (f.number, f.type, f.is_repeated) == (t.number, t.type, t.is_repeated), f"{ours.full_name}.{f.name}"
        if f.message_type is not None:
            assert f.message_type.full_name == t.message_type.full_name
            if f.message_type.GetOptions().map_entry:
                _check_fields(f.message_type, t.message_type)
        if f.enum_type is not None:
            assert f.enum_type.full_name == t.enum_type.full_name
            theirs_values = {v.name: v.number for v in t.enum_type.values}
            assert {v.name: v.number for v in f.enum_type.values}.items() <= theirs_values.items()


def test_same_names_numbers_and_types(tfs):
    for ours, theirs in _pairs(tfs):
        _check_fields(ours.DESCRIPTOR, theirs.DESCRIPTOR)
    pb = tfs[0]
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    for ours, theirs in (
        (
            apis.DESCRIPTOR.services_by_name["PredictionService"],
            prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
        ),
        (
            apis.DESCRIPTOR.services_by_name["ModelService"],
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
        ),
    ):
        assert ours.full_name == theirs.full_name
        for m in ours.methods:
            t = theirs.methods_by_name[m.name]
            assert (m.input_type.full_name, m.output_type.full_name) == (
                t.input_type.full_name,
                t.output_type.full_name,
            )
    assert pb.types_pb2.DT_FLOAT == tensor_pb2.DT_FLOAT


def test_wire_compatible_both_ways(tfs):
    pb, _, _ = tfs
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 4)).astype(np.float32)
    ours = apis.PredictRequest(output_filter=["probabilities"])
    ours.model_spec.name, ours.model_spec.signature_name = "glioma", "serving_default"
    ours.model_spec.version.value = 3
    fill_tensor(ours.inputs["image"], x)
    fill_tensor(ours.inputs["age_days"], np.array([1.0, 2.0], np.float32))
    theirs = pb.predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 3 and list(theirs.output_filter) == ["probabilities"]
    np.testing.assert_array_equal(from_proto(theirs.inputs["image"]), x)
    assert apis.PredictRequest.FromString(theirs.SerializeToString()) == ours

    resp = pb.predict_pb2.PredictResponse()
    resp.model_spec.name, resp.model_spec.version.value = "glioma", 3
    fill_tensor(resp.outputs["probabilities"], np.eye(3, dtype=np.float32))
    back = apis.PredictResponse.FromString(resp.SerializeToString())
    assert back.model_spec.version.value == 3
    np.testing.assert_array_equal(from_proto(back.outputs["probabilities"]), np.eye(3, dtype=np.float32))

    meta = pb.get_model_metadata_pb2.GetModelMetadataResponse()
    sig_map = pb.get_model_metadata_pb2.SignatureDefMap()
    sig_map.signature_def["serving_default"].inputs["age_days"].name = "serving_default_age_days:0"
    meta.metadata["signature_def"].Pack(sig_map)
    ours_meta = apis.GetModelMetadataResponse.FromString(meta.SerializeToString())
    unpacked = apis.SignatureDefMap()
    assert ours_meta.metadata["signature_def"].Unpack(unpacked)
    assert "age_days" in unpacked.signature_def["serving_default"].inputs

    status = pb.get_model_status_pb2.GetModelStatusResponse()
    status.model_version_status.add(version=2, state=pb.get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    s = apis.GetModelStatusResponse.FromString(status.SerializeToString()).model_version_status[0]
    assert (s.version, apis.ModelVersionStatus.State.Name(s.state)) == (2, "AVAILABLE")
    assert services.PredictionServiceStub and services.ModelServiceStub


def test_generated_modules_are_up_to_date():
    pytest.importorskip("grpc_tools")
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
