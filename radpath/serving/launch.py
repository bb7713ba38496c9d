"""`radpath serve`: TF Serving when its binary is on PATH, otherwise the built-in server."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from radpath.contract.errors import RadPathError

from . import BATCHING_CONFIG, MODELS_CONFIG, MONITORING_CONFIG
from .model_config import read_batching_config, read_models_config, write_models_config

log = logging.getLogger(__name__)
BINARY = "tensorflow_model_server"


def tf_serving_command(models_config: Path, grpc_port: int, rest_port: int, batching: bool) -> list[str]:
    cmd = [
        BINARY,
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={models_config}",
        "--file_system_poll_wait_seconds=2",
        f"--monitoring_config_file={MONITORING_CONFIG}",
    ]
    if batching:
        cmd += ["--enable_batching", f"--batching_parameters_file={BATCHING_CONFIG}"]
    return cmd


ALL_INTERFACES = ("0.0.0.0", "::")


def choose_backend(backend: str, host: str, binary: str | None) -> str:
    """'tf-serving' or 'builtin'. `tensorflow_model_server` has no flag to choose its interface (it
    listens on all), so `auto` takes it only when `host` is all interfaces, and `tf-serving` with
    any other host is refused rather than exposing the server beyond what was asked."""
    if backend == "tf-serving" and not binary:
        raise FileNotFoundError(f"{BINARY} is not on PATH; use --backend builtin or install TF Serving")
    if backend == "tf-serving" and host not in ALL_INTERFACES:
        raise RadPathError(
            f"{BINARY} always listens on all interfaces (it has no option to choose one); "
            f"pass --host 0.0.0.0 to accept that, or use --backend builtin to listen on {host} only"
        )
    if backend == "auto":
        return "tf-serving" if binary and host in ALL_INTERFACES else "builtin"
    return backend


def serve(
    model_base: str | Path,
    model_name: str | None = None,
    grpc_port: int = 8500,
    rest_port: int = 8501,
    models_config: str | Path = MODELS_CONFIG,
    batching: bool = True,
    backend: str = "auto",
    host: str = "127.0.0.1",
    explain: dict | None = None,
) -> None:
    """Run until interrupted. `backend`: auto (the binary if present and `host` is all interfaces),
    tf-serving, or builtin. `explain`: the built-in server's explain queue settings."""
    entries = read_models_config(models_config, model_base)
    if model_name:
        picked = [e for e in entries if e.name == model_name]
        if not picked:  # a model name not in the config: serve it with the first entry's policy
            from dataclasses import replace

            picked = [replace(entries[0], name=model_name, base_path=Path(model_base) / model_name)]
        entries = picked
    for e in entries:
        if not e.base_path.is_dir():
            log.warning("%s does not exist yet; the server will pick up versions as they are pushed", e.base_path)
    binary = shutil.which(BINARY)
    if choose_backend(backend, host, binary) == "tf-serving":
        tmp = Path(tempfile.mkdtemp(prefix="radpath-serving-")) / "models.config"
        write_models_config(entries, tmp)
        cmd = tf_serving_command(tmp, grpc_port, rest_port, batching)
        print("running " + " ".join(cmd), flush=True)
        os.execvp(cmd[0], cmd)
    from .local_server import Server

    server = Server(
        entries,
        grpc_port,
        rest_port,
        read_batching_config(BATCHING_CONFIG) if batching else None,
        host=host,
        explain=explain,
    ).start()
    why = f"no {BINARY} on PATH" if not binary else f"{BINARY} cannot listen on {host} only"
    print(
        f"built-in server ({why}): gRPC on {host}:{server.grpc_port}, REST on {host}:{server.rest_port}; "
        f"serving {', '.join(f'{e.name} from {e.base_path}' for e in entries)}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
