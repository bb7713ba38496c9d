"""The second signature and the refer threshold through every serving backend: GetModelMetadata lists
`explain`, a Predict on it returns a [b, 224, 224, 2] map (one per view) in [0, 1], the default signature serves the
refer threshold, and a classification carries refer/refer_reasons."""

import json
import urllib.request

import numpy as np
import pytest

from radpath.client.grpc_client import GlioClient
from radpath.contract.refer import NOT_ASSESSED


def test_metadata_lists_both_signatures_and_explain_works(backend):
    with GlioClient(backend.grpc_target, timeout=60) as client:
        assert set(client.signatures()) >= {"serving_default", "explain"}
        assert client.can_explain()
        x = np.random.default_rng(0).normal(size=(2, 224, 224, 8)).astype(np.float32)
        probs, maps = client.explain(x)
        assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
        assert (
            maps.shape == (2, 224, 224, 2) and maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2, 3)), 1, atol=1e-5)
        )
        ref, threshold, _ = client.predict_full(x)
        np.testing.assert_allclose(ref, probs, atol=1e-5)  # the same calibrated probabilities
        assert threshold is not None and (0 <= threshold <= 1 or threshold == NOT_ASSESSED)  # tiny model: no split


def test_unknown_signature_is_invalid_argument(backend):
    import grpc

    from radpath.contract.tensor_codec import fill_tensor
    from radpath.contract.tfs_api import serving_apis_pb2 as apis
    from radpath.contract.tfs_api import serving_apis_pb2_grpc as services

    channel = grpc.insecure_channel(backend.grpc_target)
    req = apis.PredictRequest()
    req.model_spec.name = "glioma"
    req.model_spec.signature_name = "nope"
    fill_tensor(req.inputs["image"], np.zeros((1, 224, 224, 8), np.float32))
    with pytest.raises(grpc.RpcError) as info:
        services.PredictionServiceStub(channel).Predict(req, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in info.value.details()
    channel.close()


def test_rest_explain(backend):
    body = json.dumps({"signature_name": "explain", "instances": np.zeros((1, 224, 224, 8)).tolist()}).encode()
    req = urllib.request.Request(f"{backend.rest_url}/v1/models/glioma:predict", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        out = json.loads(resp.read())["predictions"][0]
    assert len(out["attribution"]) == 224 and len(out["probabilities"]) == 3


def test_classification_carries_refer(backend, case_dir):
    with GlioClient(backend.grpc_target, timeout=60) as client:
        result = client.classify(case_dir)
    d = result.as_dict()
    assert isinstance(d["refer"], bool) and d["refer"] == bool(d["refer_reasons"])
    # the tiny test model was exported without a held-out split: it serves NOT_ASSESSED, which the
    # result shows as no threshold at all (null in JSON), never as a probability of 2.0
    assert result.refer_threshold == NOT_ASSESSED and not result.threshold_assessed
    assert d["refer_threshold"] is None and d["threshold_assessed"] is False
    assert d["refer"] is True and any("confidence not assessed" in r for r in d["refer_reasons"])
    assert json.loads(json.dumps(d))["refer_threshold"] is None
