"""The same client tests against every serving backend (built-in here; TF Serving where installed)."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from radpath.client.grpc_client import GlioClient, InvalidInputError, ModelNotFoundError
from radpath.train.export import saved_model_predict


def _rest(url, body=None):
    req = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_status(backend):
    with GlioClient(backend.grpc_target) as c:
        assert c.status() == [(1, "AVAILABLE")]
    code, body = _rest(f"{backend.rest_url}/v1/models/glioma")
    assert code == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize("batch", [1, 8])
def test_predict_matches_in_process_savedmodel(backend, model_base, batch):
    """Batch 8 is 6.4 MB, over gRPC's 4 MB default: both sides raise the limit."""
    x = np.random.default_rng(batch).normal(size=(batch, 224, 224, 8)).astype(np.float32)
    with GlioClient(backend.grpc_target) as c:
        probs, version = c.predict(x)
    assert version == 1
    np.testing.assert_allclose(probs, saved_model_predict(model_base / "glioma" / "1", x), atol=1e-6)


def test_rest_predict(backend, model_base):
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 8)).astype(np.float32)
    code, body = _rest(f"{backend.rest_url}/v1/models/glioma:predict", {"instances": x.tolist()})
    assert code == 200
    probs = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(probs, saved_model_predict(model_base / "glioma" / "1", x), atol=1e-5)
    assert all(p["classes"] in ("A", "O", "G") for p in body["predictions"])


def test_unknown_model_and_version(backend):
    with GlioClient(backend.grpc_target, model="nope", retries=0) as c:
        with pytest.raises(ModelNotFoundError):
            c.status()
    with GlioClient(backend.grpc_target, version=99, retries=0) as c:
        with pytest.raises(ModelNotFoundError):
            c.predict(np.zeros((1, 224, 224, 8), np.float32))
    assert _rest(f"{backend.rest_url}/v1/models/nope")[0] == 404
    assert _rest(f"{backend.rest_url}/v1/models/glioma/versions/99:predict", {"instances": [[0]]})[0] == 404


def test_bad_tensor_is_invalid_argument(backend):
    from radpath.serving.protos import pb, to_proto

    with GlioClient(backend.grpc_target, retries=0) as c:
        req = pb.predict_pb2.PredictRequest()
        req.model_spec.name = "glioma"
        req.inputs["image"].CopyFrom(to_proto(np.zeros((1, 100, 100, 4), np.float32)))
        with pytest.raises(InvalidInputError, match="image"):
            c._call(c._predict.Predict, req, "predict")
    code, body = _rest(f"{backend.rest_url}/v1/models/glioma:predict", {"instances": [[1, 2, 3]]})
    assert code == 400 and "error" in body


def test_classify_a_case(backend, case_dir):
    with GlioClient(backend.grpc_target) as c:
        r = c.classify(case_dir)
        tta = c.classify(case_dir, tta=True)
    assert r.case_id == case_dir.name and r.label in ("A", "O", "G") and r.model_version == 1
    assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.tumor_found and 0 <= r.slice_index < 62
    assert tta.slice_index == r.slice_index
