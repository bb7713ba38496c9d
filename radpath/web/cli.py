"""`radpath web`, `radpath web-worker` and `radpath users ...`: thin wrappers over the web package.

`add_parsers(subparsers)` registers them on the main `radpath` parser; nothing heavy is imported
until a command runs.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from radpath.contract.errors import RadPathError

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace):
    from .settings import load_settings

    return load_settings(
        data_dir=args.data,
        database_url=args.database_url,
        server=getattr(args, "server", None),
        model_base=getattr(args, "model_base", None),
        lease_seconds=getattr(args, "lease_seconds", None),
        max_queued_per_user=getattr(args, "max_queued_per_user", None),
        shutdown_grace_seconds=getattr(args, "shutdown_grace_seconds", None),
    )


def _engine(args: argparse.Namespace):
    from .db import engine_for

    return engine_for(_settings(args).db_url)


def _serve(app, settings, args: argparse.Namespace, workers: list) -> None:
    """uvicorn, with SIGTERM/SIGINT also passed to the workers at once, and without the process
    dying from the signal uvicorn re-raises after its graceful shutdown (see `lifecycle`)."""
    import signal

    import uvicorn

    from .lifecycle import signal_workers

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            signal_workers(workers)
            super().handle_exit(sig, frame)

    received = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # the handlers uvicorn restores, then re-raises into
        signal.signal(sig, lambda s, _f: received.append(s))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        limit_concurrency=args.limit_concurrency,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds / 2)),
    )
    Server(config).run()


def cmd_web(args: argparse.Namespace) -> int:
    import os

    from .app import create_app
    from .lifecycle import start_workers, stop_workers
    from .settings import NIIVUE_JS

    os.umask(0o077)  # uploads, results and the database are patient data: 0600 files, 0700 folders
    settings = _settings(args)
    if not NIIVUE_JS.is_file():
        log.warning("NiiVue is missing (%s): the 3D views will not load; run scripts/setup", NIIVUE_JS)
    app = create_app(settings)
    workers = start_workers(settings, args.workers)
    print(
        f"RadPath web on http://{args.host}:{args.port}/ (data {settings.data_dir}, database "
        f"{'PostgreSQL' if settings.db_url.startswith('postgres') else 'SQLite'}, model server {settings.server}, "
        f"{args.workers} worker(s))",
        file=sys.stderr,
    )
    try:
        _serve(app, settings, args, workers)
    finally:
        stop_workers(workers, settings.shutdown_grace_seconds)
    return 0


def cmd_web_worker(args: argparse.Namespace) -> int:
    import os
    import threading

    from .lifecycle import signal_workers, start_workers, stop_workers
    from .shutdown_signals import stop_on_signals
    from .worker import run_worker

    os.umask(0o077)
    settings = _settings(args)
    extra = start_workers(settings, args.processes - 1) if args.processes > 1 else []
    stop = threading.Event()
    stop_on_signals(stop, also=lambda: signal_workers(extra))  # not `stop.set()` in a handler: see there
    try:
        run_worker(settings, stop=stop, once=args.once)
    finally:
        stop_workers(extra, settings.shutdown_grace_seconds)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise RadPathError("the two passwords differ")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    from . import audit, auth

    engine = _engine(args)
    if args.users_command == "add":
        auth.add_user(engine, args.name, _read_password(args), admin=args.admin)
        audit.record(engine, "user-add", "ok", username=args.name, detail="admin" if args.admin else None, client="cli")
        print(f"user {args.name} created{' (admin)' if args.admin else ''}")
    elif args.users_command == "list":
        for u in auth.list_users(engine):
            flags = ", ".join(f for f, on in (("admin", u["is_admin"]), ("disabled", u["disabled"])) if on)
            print(f"{u['username']}{f' ({flags})' if flags else ''}")
    elif args.users_command == "disable":
        auth.disable_user(engine, args.name)
        audit.record(engine, "user-disable", "ok", username=args.name, client="cli")
        print(f"user {args.name} disabled; their sessions ended")
    elif args.users_command == "reset-password":
        auth.reset_password(engine, args.name, _read_password(args))
        audit.record(engine, "user-reset-password", "ok", username=args.name, client="cli")
        print(f"password of {args.name} changed; their sessions ended")
    return 0


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--data",
        help="data folder: uploads, results, SQLite database (default $RADPATH_WEB_DATA or ./radpath-web-data)",
    )
    s.add_argument(
        "--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in --data)"
    )


def _serving(s: argparse.ArgumentParser) -> None:
    s.add_argument("--server", help="HOST:PORT of the gRPC model server (default $RADPATH_SERVER or localhost:8500)")
    s.add_argument(
        "--model-base", help="the model store, read-only, for the model card (default $RADPATH_WEB_MODEL_BASE)"
    )
    s.add_argument(
        "--lease-seconds", type=float, help="job lease; a stopped worker's job is retried after it (default 60)"
    )
    s.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        help="after SIGTERM: time to finish the current case before it is put back in the queue (default 20; "
        "keep it under the pod's terminationGracePeriodSeconds)",
    )


def add_parsers(sub) -> None:
    """Register `web`, `web-worker` and `users` on the `radpath` subparsers."""
    s = sub.add_parser("web", help="the web app: 3D viewer, login, upload, results (with its workers)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 in a container behind a Service)",
    )
    s.add_argument("--port", type=int, default=8080)
    s.add_argument(
        "--workers", type=int, default=1, help="classification worker processes started with the site (0: none)"
    )
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-Proto/For")
    s.add_argument("--limit-concurrency", type=int, default=64, help="open requests before the site answers 503")
    s.add_argument(
        "--max-queued-per-user",
        type=int,
        help="cases one user may have waiting or running; more are refused until some finish (default 10)",
    )
    _common(s)
    _serving(s)
    s.set_defaults(func=cmd_web)

    s = sub.add_parser("web-worker", help="classification workers of the web app, without the site")
    s.add_argument("--processes", type=int, default=1)
    s.add_argument("--once", action="store_true", help="exit when the queue is empty")
    _common(s)
    _serving(s)
    s.set_defaults(func=cmd_web_worker)

    s = sub.add_parser("users", help="web app accounts: add, list, disable, reset-password")
    users = s.add_subparsers(dest="users_command", required=True)
    for name, help_ in (
        ("add", "create an account"),
        ("list", "list accounts"),
        ("disable", "disable an account and end its sessions"),
        ("reset-password", "set a new password and end the account's sessions"),
    ):
        u = users.add_parser(name, help=help_)
        if name != "list":
            u.add_argument("name")
        if name == "add":
            u.add_argument("--admin", action="store_true")
        if name in ("add", "reset-password"):
            u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
        _common(u)
    s.set_defaults(func=cmd_users)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m radpath.web.cli ...`), same commands as `radpath`."""
    p = argparse.ArgumentParser(prog="radpath")
    add_parsers(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RadPathError as exc:
        print(f"radpath {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
