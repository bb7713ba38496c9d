"""`radpath serve`: a thin entry point over `serving.launch.serve` (TF Serving or the built-in server).

Importing this module is cheap: tensorflow loads inside the command (extra: serve).
"""

from __future__ import annotations

import argparse


def cmd_serve(args: argparse.Namespace) -> int:
    from radpath.contract.errors import RadPathError

    from . import MODELS_CONFIG
    from .launch import serve

    try:
        serve(
            args.model_base,
            args.model_name,
            args.grpc_port,
            args.rest_port,
            args.models_config or MODELS_CONFIG,
            batching=not args.no_batching,
            backend=args.backend,
            host=args.host,
            explain={"max_rows": args.explain_max_rows, "concurrency": args.explain_concurrency},
        )
    except (FileNotFoundError, OSError) as exc:
        raise RadPathError(str(exc)) from None
    return 0


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "serve", help="serve SavedModels over gRPC and REST (TF Serving if installed, else built-in; extra: serve)"
    )
    s.add_argument("--model-base", required=True, help="folder holding <name>/<version>/ SavedModels")
    s.add_argument("--model-name", help="serve only this model (default: every model in --models-config)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on, for gRPC and REST (default 127.0.0.1: this machine only; "
        "0.0.0.0 in a container or to accept other machines)",
    )
    s.add_argument("--grpc-port", type=int, default=8500)
    s.add_argument("--rest-port", type=int, default=8501)
    s.add_argument("--models-config", help="TF Serving model config (default: serving/models.config)")
    s.add_argument("--no-batching", action="store_true", help="do not batch concurrent requests")
    s.add_argument(
        "--backend",
        choices=["auto", "builtin", "tf-serving"],
        default="auto",
        help="auto: tensorflow_model_server if on PATH and --host is 0.0.0.0 (it cannot listen on one "
        "interface only), else the built-in server",
    )
    s.add_argument(
        "--explain-max-rows",
        type=_at_least_one,
        default=1,
        help="rows one 'explain' request may carry (built-in server; default 1: a row costs tens of Predicts)",
    )
    s.add_argument(
        "--explain-concurrency",
        type=_at_least_one,
        default=1,
        help="'explain' requests run at once (built-in server; they always wait for Predict)",
    )
    s.set_defaults(func=cmd_serve)
