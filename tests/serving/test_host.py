"""`radpath serve --host` (issue 19, item 8): both front ends listen on the interface asked for,
loopback by default; TF Serving's binary, which cannot choose, is only used where all interfaces
were asked for."""

from __future__ import annotations

import socket

import pytest

from radpath.contract.errors import RadPathError
from radpath.serving.launch import choose_backend
from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("host", [None, "127.0.0.2"])
def test_both_front_ends_listen_only_on_the_chosen_interface(tmp_path, host):
    kwargs = {} if host is None else {"host": host}
    server = Server([ModelEntry("glioma", tmp_path / "glioma", "latest", 1)], 0, 0, **kwargs).start()
    chosen = host or "127.0.0.1"
    other = "127.0.0.3" if host else "127.0.0.2"  # loopback addresses the server did not bind
    try:
        for port in (server.grpc_port, server.rest_port):
            assert _reachable(chosen, port) and not _reachable(other, port), (chosen, other, port)
    finally:
        server.stop()


def test_serve_parser_defaults_to_loopback():
    from radpath.cli import build_parser

    args = build_parser("serve").parse_args(["serve", "--model-base", "m"])
    assert args.host == "127.0.0.1" and args.explain_max_rows == 1 and args.explain_concurrency == 1
    args = build_parser("serve").parse_args(["serve", "--model-base", "m", "--host", "0.0.0.0"])
    assert args.host == "0.0.0.0"


def test_tf_serving_binary_only_where_all_interfaces_were_asked_for():
    binary = "/usr/bin/tensorflow_model_server"
    assert choose_backend("auto", "127.0.0.1", binary) == "builtin"
    assert choose_backend("auto", "0.0.0.0", binary) == "tf-serving"
    assert choose_backend("auto", "0.0.0.0", None) == "builtin"
    assert choose_backend("builtin", "0.0.0.0", binary) == "builtin"
    with pytest.raises(RadPathError, match="always listens on all interfaces"):
        choose_backend("tf-serving", "127.0.0.1", binary)
    with pytest.raises(FileNotFoundError):
        choose_backend("tf-serving", "0.0.0.0", None)
