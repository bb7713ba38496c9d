"""`radpath`: one command; each subcommand lives next to what it drives.

| subcommands | module | install |
|---|---|---|
| classify, classify-cohort, merge-predictions, evaluate, inspect | `radpath.client.cli` | core |
| synth | `radpath.synth.cli` | core |
| prepare | `radpath.prepare.cli` | `radpath[prepare]` |
| train, export, evaluate-model | `radpath.train.cli` | `radpath[train]` |
| convert-weights | `radpath.train.pretrained_cli` | `radpath[train]` |
| serve | `radpath.serving.cli` | `radpath[serve]` |
| web, web-worker, users | `radpath.web.cli` | `radpath[web]` |

The dispatcher imports a subcommand's module only when that subcommand runs (all of them for
`radpath --help`), and each module imports its heavy libraries inside the command, so `--help` is
instant and the client commands never load training or serving code. A command whose extra is not
installed says which one to install, in one line, exit 1. Input errors (RadPathError) are one line
on stderr, exit 1, no traceback.

Exit codes: 0 done; 1 an error (the line on stderr says which); 3 `classify-cohort` finished but
some cases failed (listed in OUT.failed.csv); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from radpath.contract.errors import EXIT_CASES_FAILED, EXIT_ERROR, EXIT_INTERRUPTED, RadPathError

# subcommand -> (module with add_parsers(subparsers), extra that module's commands need)
COMMANDS: dict[str, tuple[str, str | None]] = {
    "inspect": ("radpath.client.cli", None),
    "evaluate": ("radpath.client.cli", None),
    "classify": ("radpath.client.cli", None),
    "classify-cohort": ("radpath.client.cli", None),
    "merge-predictions": ("radpath.client.cli", None),
    "synth": ("radpath.synth.cli", None),
    "prepare": ("radpath.prepare.cli", "prepare"),
    "train": ("radpath.train.cli", "train"),
    "export": ("radpath.train.cli", "train"),
    "evaluate-model": ("radpath.train.cli", "train"),
    "convert-weights": ("radpath.train.pretrained_cli", "train"),
    "serve": ("radpath.serving.cli", "serve"),
    "web": ("radpath.web.cli", "web"),
    "web-worker": ("radpath.web.cli", "web"),
    "users": ("radpath.web.cli", "web"),
}
EXTRA_OF_MODULE = {
    "jax": "train",
    "jaxlib": "train",
    "flax": "train",
    "optax": "train",
    "safetensors": "train",
    "matplotlib": "train",
    "tensorflow": "serve",
    "tensorflow_serving": "serve",
    "fastapi": "web",
    "uvicorn": "web",
    "sqlalchemy": "web",
    "jinja2": "web",
    "multipart": "web",
    "argon2": "web",
    "pydicom": "prepare",
    "SimpleITK": "prepare",
}
"""Third-party top-level modules -> the extra that installs them (for the one-line hint)."""


class MissingExtraError(Exception):
    def __init__(self, command: str, extra: str, module: str):
        super().__init__(
            f"radpath {command}: needs the '{extra}' extra (module {module} is not installed): "
            f"pip install 'radpath[{extra}]'"
        )


def _unavailable(sub, module: str, extra: str | None, reason: str) -> None:
    """Stand-in parsers for the commands of a module that cannot be imported here."""
    for name, (mod, _) in COMMANDS.items():
        if mod != module:
            continue
        s = sub.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)

        def fail(args, name=name):
            hint = f": pip install 'radpath[{extra}]'" if extra else ""
            raise SystemExit(f"radpath {name}: not available in this install ({reason}){hint}")

        s.set_defaults(func=fail)


def _add_module(sub, module: str, extra: str | None) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        _unavailable(sub, module, extra or EXTRA_OF_MODULE.get(root), f"module {exc.name} is not installed")
        return
    except Exception as exc:  # a broken optional module must not take the other commands down
        _unavailable(sub, module, extra, f"{module} failed to import: {type(exc).__name__}: {exc}")
        return
    adder = getattr(mod, "add_parsers", None)
    if adder is None:
        _unavailable(sub, module, extra, f"{module} has no add_parsers()")
    else:
        adder(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only the module that defines it is imported."""
    p = argparse.ArgumentParser(
        prog="radpath",
        description="Diffuse glioma class (A / O / G) from four MRI sequences.",
        epilog=f"exit codes: 0 done, {EXIT_ERROR} error, {EXIT_CASES_FAILED} classify-cohort "
        "finished with failed cases, 130 interrupted",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    modules: dict[str, str | None] = {}
    for name, (module, extra) in COMMANDS.items():
        if command is None or name == command:
            modules.setdefault(module, extra)
    for module, extra in modules.items():
        _add_module(sub, module, extra)
    return p


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in argv (skipping global options), if it is a known one."""
    for a in argv:
        if a.startswith("-"):
            continue
        return a if a in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except RadPathError as exc:
        print(f"radpath {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        extra = COMMANDS.get(args.command, (None, None))[1] or EXTRA_OF_MODULE.get(root)
        if root in EXTRA_OF_MODULE and extra:
            print(MissingExtraError(args.command, extra, exc.name), file=sys.stderr)
            return EXIT_ERROR
        raise
    except KeyboardInterrupt:
        print(f"radpath {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
