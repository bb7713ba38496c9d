"""A served model for the contract tests: a tiny exported ResNet behind each available backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from radpath.serving.model_config import ModelEntry
from tests.train.conftest import TINY


def export_tiny(model_base: Path, seed: int, **settings) -> Path:
    """Export an untrained tiny model (TINY with `settings`); with `stats_fusion` its tumour-statistics
    reader gets random weights, so the statistics the client sends move the answer."""
    import numpy as np

    from radpath.train.export import export_run
    from radpath.train.fusion import FUSION_KEY
    from radpath.train.loop import init_variables
    from radpath.train.run import save_model

    config = TINY.replace(seed=seed, **settings)
    variables = init_variables(config)
    if FUSION_KEY in variables:
        rng = np.random.default_rng(seed)
        reader = dict(variables[FUSION_KEY])
        reader["coef"] = rng.normal(scale=0.5, size=np.shape(reader["coef"])).astype(np.float32)
        variables = {**variables, FUSION_KEY: reader}
    run = model_base.parent / f"run-{seed}"
    save_model(run / "model", variables, config)
    return Path(export_run(run, model_base, "glioma", force=True)["path"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def model_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("models") / "base"
    export_tiny(base, seed=1)
    return base


def start_server(model_base: Path, **settings):
    """A started built-in server on free ports holding the tiny model: batches of up to 16 after 1 ms, no
    version polling to speak of; `settings` go to `Server` (e.g. `explain=`)."""
    from radpath.serving.local_server import Server

    return Server(
        [ModelEntry("glioma", model_base / "glioma", "latest", 1)],
        0,
        0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 1000},
        poll_seconds=60,
        **settings,
    ).start()


class Backend:
    def __init__(self, name: str, grpc_target: str, rest_url: str, stop):
        self.name, self.grpc_target, self.rest_url, self.stop = name, grpc_target, rest_url, stop


def _start_builtin(base: Path) -> Backend:
    from radpath.serving.local_server import Server

    server = Server(
        [ModelEntry("glioma", base / "glioma", "latest", 2)],
        grpc_port=0,
        rest_port=0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 2000},
        poll_seconds=0.2,
        host="127.0.0.1",
    ).start()
    return Backend("builtin", f"127.0.0.1:{server.grpc_port}", f"http://127.0.0.1:{server.rest_port}", server.stop)


def _start_binary(base: Path, tmp: Path) -> Backend:
    from radpath.serving.launch import tf_serving_command
    from radpath.serving.model_config import write_models_config

    cfg = tmp / "models.config"
    write_models_config([ModelEntry("glioma", base / "glioma", "latest", 2)], cfg)
    g, r = _free_port(), _free_port()
    proc = subprocess.Popen(tf_serving_command(cfg, g, r, batching=True))
    time.sleep(5)
    return Backend("tf_serving_binary", f"127.0.0.1:{g}", f"http://127.0.0.1:{r}", proc.terminate)


@pytest.fixture(
    scope="session", params=["builtin", pytest.param("tf_serving_binary", marks=pytest.mark.tf_serving_binary)]
)
def backend(request, model_base, tmp_path_factory):
    """Every available serving backend; the real binary runs where it is installed, else is skipped."""
    if request.param == "tf_serving_binary":
        if not shutil.which("tensorflow_model_server"):
            pytest.skip("tensorflow_model_server is not on PATH (not installable on this machine)")
        b = _start_binary(model_base, tmp_path_factory.mktemp("tfs"))
    else:
        b = _start_builtin(model_base)
    yield b
    b.stop()
