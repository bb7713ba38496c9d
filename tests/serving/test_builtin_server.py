"""Behaviour of the built-in server that goes beyond the shared contract: hot reload, bad pushes."""

import logging
import time

import numpy as np
import pytest

from radpath.client.grpc_client import GlioClient, ServerUnavailableError
from radpath.serving import BATCHING_CONFIG, MODELS_CONFIG
from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry, read_batching_config, read_models_config
from tests.serving.conftest import export_tiny


def _wait_for(fn, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if fn():
            return True
        time.sleep(0.2)
    return False


def test_repository_configs_parse(tmp_path):
    entries = read_models_config(MODELS_CONFIG, tmp_path)
    assert entries[0].name == "glioma" and entries[0].base_path == tmp_path / "glioma"
    assert entries[0].policy == "latest" and entries[0].num_versions == 2
    assert read_batching_config(BATCHING_CONFIG)["max_batch_size"] >= 8


def test_new_version_picked_up_and_old_one_still_answerable(tmp_path, caplog):
    base = tmp_path / "models"
    export_tiny(base, seed=1)
    server = Server(
        [ModelEntry("glioma", base / "glioma", "latest", 2)], 0, 0, poll_seconds=0.2, host="127.0.0.1"
    ).start()
    try:
        client = GlioClient(f"127.0.0.1:{server.grpc_port}")
        x = np.random.default_rng(0).normal(size=(1, 224, 224, 8)).astype(np.float32)
        p1, v = client.predict(x)
        assert v == 1
        export_tiny(base, seed=2)
        assert _wait_for(lambda: client.status() == [(1, "AVAILABLE"), (2, "AVAILABLE")])
        p2, v = client.predict(x)
        assert v == 2 and not np.allclose(p1, p2)
        old = GlioClient(f"127.0.0.1:{server.grpc_port}", version=1)
        assert old.predict(x)[1] == 1
        # a corrupt push: version 3 whose saved_model.pb is garbage -> still serving 2, reason logged
        bad = base / "glioma" / "3"
        bad.mkdir()
        (bad / "saved_model.pb").write_bytes(b"not a saved model")
        with caplog.at_level(logging.ERROR, logger="radpath.serving.model_registry"):
            time.sleep(1.5)
        assert client.predict(x)[1] == 2
        assert any("could not load glioma version 3" in r.message for r in caplog.records)
        # a half-written push (folder without saved_model.pb yet) is ignored silently
        (base / "glioma" / "4").mkdir()
        time.sleep(0.5)
        assert client.predict(x)[1] == 2
    finally:
        server.stop()


def test_concurrent_requests_are_batched(model_base):
    from concurrent.futures import ThreadPoolExecutor

    server = Server(
        [ModelEntry("glioma", model_base / "glioma", "latest", 2)],
        0,
        0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 20000},
        host="127.0.0.1",
    ).start()
    try:
        client = GlioClient(f"127.0.0.1:{server.grpc_port}")
        xs = [np.random.default_rng(i).normal(size=(1, 224, 224, 8)).astype(np.float32) for i in range(8)]
        alone = [client.predict(x)[0] for x in xs]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda x: client.predict(x)[0], xs))
        for a, b in zip(alone, together):
            np.testing.assert_allclose(a, b, atol=1e-5)  # each caller gets its own rows back
    finally:
        server.stop()


def test_unavailable_server_retries_then_clear_error():
    client = GlioClient("127.0.0.1:1", retries=2, backoff=0.05, timeout=2)
    t0 = time.time()
    with pytest.raises(ServerUnavailableError, match="unavailable after 3 attempts"):
        client.status()
    assert time.time() - t0 >= 0.15  # backed off 0.05 + 0.1
