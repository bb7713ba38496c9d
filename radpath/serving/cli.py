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
        )
    except (FileNotFoundError, OSError) as exc:
        raise RadPathError(str(exc)) from None
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "serve", help="serve SavedModels over gRPC and REST (TF Serving if installed, else built-in; extra: serve)"
    )
    s.add_argument("--model-base", required=True, help="folder holding <name>/<version>/ SavedModels")
    s.add_argument("--model-name", help="serve only this model (default: every model in --models-config)")
    s.add_argument("--grpc-port", type=int, default=8500)
    s.add_argument("--rest-port", type=int, default=8501)
    s.add_argument("--models-config", help="TF Serving model config (default: serving/models.config)")
    s.add_argument("--no-batching", action="store_true", help="do not batch concurrent requests")
    s.add_argument("--backend", choices=["auto", "builtin", "tf-serving"], default="auto")
    s.set_defaults(func=cmd_serve)
