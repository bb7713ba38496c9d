"""The client's subcommands: classify, classify-cohort, merge-predictions, evaluate, inspect.

`radpath.cli` (the dispatcher) calls `add_parsers`; this module is light (no TensorFlow, JAX or
Flax), so the core install runs it. Input errors become one line on stderr and exit code 1 there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from radpath.contract.errors import EXIT_CASES_FAILED, EXIT_ERROR
from radpath.contract.model_io import CHANNELS as SEQUENCE_FLAGS

log = logging.getLogger("radpath")


PATH_MAX = 4096
"""Linux's limit on a whole path, in bytes with the final NUL; longer ones fail deep in open()."""
NAME_MAX = 255
"""Linux file systems' limit on one path component, in bytes."""
PATH_ARGUMENTS = ("case_dir", *SEQUENCE_FLAGS, "cohort", "out", "predictions", "labels", "shards", "explain")


def check_path_arguments(args: argparse.Namespace) -> None:
    """Refuse a path argument the system cannot open, in one line, before any work (the OS would
    fail with ENAMETOOLONG's traceback half-way through)."""
    from radpath.contract.errors import RadPathError

    for name in PATH_ARGUMENTS:
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str):
                continue
            flag = name if name in ("case_dir", "cohort", "predictions", "labels", "shards") else f"--{name}"
            size = len(os.fsencode(value))
            if size >= PATH_MAX:
                raise RadPathError(
                    f"{flag}: the path {value[:40]}... is {size} bytes long; the system allows {PATH_MAX - 1}"
                )
            longest = max((p for p in value.split(os.sep)), key=lambda p: len(os.fsencode(p)))
            if len(os.fsencode(longest)) > NAME_MAX:
                raise RadPathError(
                    f"{flag}: a path component of {len(os.fsencode(longest))} bytes ({longest[:40]}...) is "
                    f"longer than the {NAME_MAX} the file system allows"
                )


def positive_seconds(text: str) -> float:
    """argparse type of --timeout: a finite number of seconds > 0 (0 or less would fail every call)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def whole_number(minimum: int):
    """argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse


# ---------------------------------------------------------------- output
def print_json(obj) -> None:
    """JSON on stdout; NaN becomes null (strict JSON has no NaN); numpy scalars and paths as values."""
    import math

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if hasattr(o, "item") and not isinstance(o, (str, bytes)):  # numpy scalar
            return clean(o.item())
        if isinstance(o, Path):
            return str(o)
        return o

    print(json.dumps(clean(obj), indent=2))


# ---------------------------------------------------------------- client commands
def _server(args: argparse.Namespace) -> str:
    import os

    return args.server or os.environ.get("RADPATH_SERVER", "localhost:8500")


def case_source(args: argparse.Namespace) -> str | dict[str, str]:
    """CASE_DIR, or the four files given as --flair --t1 --t1ce --t2 (exactly one of the two)."""
    from radpath.contract.errors import RadPathError

    files = {seq: getattr(args, seq) for seq in SEQUENCE_FLAGS}
    if args.case_dir and any(files.values()):
        raise RadPathError("give either CASE_DIR or the four files --flair --t1 --t1ce --t2, not both")
    if args.case_dir:
        return args.case_dir
    missing = [f"--{k}" for k, v in files.items() if not v]
    if missing:
        raise RadPathError(f"give CASE_DIR or all four files (missing {' '.join(missing)})")
    return files


def inspect_case(source, case_id: str | None = None) -> dict:
    """What `radpath inspect` reports: where the tumour is, the checks that passed, the warnings."""
    from radpath.client.grpc_client import case_warnings
    from radpath.preprocess import find_tumor, load_case, model_input

    t0 = time.perf_counter()
    case = load_case(source, case_id=case_id)
    tumor = find_tumor(case)
    x = model_input(case, tumor.index)
    return {
        "case_id": case.case_id,
        "slice_index": tumor.index,
        "tumor_voxels": tumor.voxels,
        "tumor_found": tumor.found,
        "warnings": case_warnings(case),
        "shape": list(case.shape),
        "stored_orientation": case.source_orientation,
        "model_input_shape": list(x.shape),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    check_path_arguments(args)
    info = inspect_case(case_source(args), args.case_id)
    if args.json:
        print_json(info)
    else:
        found = (
            f"{info['tumor_voxels']} tumour voxels" if info["tumor_found"] else "NO tumour found (brain centre used)"
        )
        print(f"{info['case_id']}: shape {tuple(info['shape'])}, max-tumour slice {info['slice_index']}, {found}")
        for w in info["warnings"]:
            print(f"  warning [{w['code']}]: {w['message']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_path_arguments(args)
    from radpath.contract.metrics import evaluate_files, format_scores

    scores = evaluate_files(args.predictions, args.labels)
    _note_unlabelled(scores, args.labels)
    print_json(scores) if args.json else print(format_scores(scores))
    return 0


def _note_unlabelled(scores: dict, labels: str) -> None:
    if scores.get("skipped_unlabelled"):
        print(
            f"note: {scores['skipped_unlabelled']} rows of {labels} have no class and were not scored", file=sys.stderr
        )


def slice_note(tumor_found: bool, warnings: list[dict[str, str]]) -> str:
    """What the one-line answer says about the slice the model saw when no tumour was confidently found."""
    if tumor_found:
        return ""
    if any(w.get("code") == "tumour-uncertain" for w in warnings):
        return "  (no confident tumour: the slice of the most suspicious region used)"
    return "  (no tumour found: brain centre slice used)"


def cmd_classify(args: argparse.Namespace) -> int:
    check_path_arguments(args)
    from radpath.client.grpc_client import GlioClient
    from radpath.preprocess import load_case

    prepared = None
    if args.prepare:  # a DICOM study or native NIfTI: onto the BraTS grid first (radpath[prepare])
        from radpath.prepare.cli import prepare_for_classify

        prepared = prepare_for_classify(args)
    source = case_source(args)
    with GlioClient(_server(args), args.model, args.version, timeout=args.timeout) as client:
        t0 = time.perf_counter()
        case = load_case(source, case_id=args.case_id, age_days=args.age_days)
        load_s = time.perf_counter() - t0
        result = client.classify_case(case, tta=args.tta)
        result.timings["load"] = round(load_s, 4)
        explanation = None
        if args.explain:
            from radpath.client.explain import write_explanation

            explanation = write_explanation(client, case, args.explain)
    if args.age_days is not None and not result.age_used:
        print(
            f"warning: model {result.model} version {result.model_version} does not take age; --age-days was ignored",
            file=sys.stderr,
        )
    if args.json:
        extra = {"explanation": explanation} if explanation else {}
        print_json({**result.as_dict(), **extra, **({"prepared": prepared} if prepared else {})})
    else:
        probs = "  ".join(f"{c} {p:.3f}" for c, p in result.probabilities.items())
        note = slice_note(result.tumor_found, result.warnings)
        print(
            f"{result.case_id}: {result.label}   [{probs}]   slice {result.slice_index}, "
            f"model {result.model} v{result.model_version}{note}"
        )
        if result.refer:
            print("  REFER: not sure, send to specialist review")
            for reason in result.refer_reasons:
                print(f"    - {reason}")
        for w in result.warnings:
            print(f"  warning [{w['code']}]: {w['message']}")
        if prepared:
            for q, c in prepared["sequences"].items():
                print(f"  {q} <- {c['series']}: {c['reason']}")
            print(f"  prepared case: {prepared['case_dir']} (QC picture {prepared['qc_picture']})")
        if explanation:
            print(
                f"  explanation: {explanation['path']} (attribution peak inside the tumour outline: "
                f"{explanation['peak_in_tumour']})"
            )
    return 0


def cmd_classify_cohort(args: argparse.Namespace) -> int:
    check_path_arguments(args)
    from radpath.client.cohort_batch import classify_cohort
    from radpath.contract.errors import RadPathError

    cohort, failed_before = args.cohort, []
    if args.prepare:  # a folder of DICOM studies or native NIfTI folders (radpath[prepare])
        from radpath.prepare.cli import prepare_for_cohort

        cohort, failed_before = prepare_for_cohort(args)
    s = classify_cohort(
        cohort,
        args.out,
        _server(args),
        args.model,
        args.workers,
        args.shard,
        args.tta,
        args.timeout,
        args.retries,
        progress=not args.quiet,
        failed_before=failed_before,
    )
    print(
        f"{s.written} cases classified, {s.skipped_done} already in {args.out}, {len(s.failed)} failed "
        f"({s.seconds} s)" + (f"; failures listed in {args.out}.failed.csv" if s.failed else "")
    )
    if s.stopped:
        raise RadPathError(f"stopped: {s.stopped}. Rerun the same command to continue; finished rows are kept")
    if s.failed:
        print(
            f"radpath classify-cohort: {len(s.failed)} cases failed (exit code {EXIT_CASES_FAILED}); "
            f"reasons in {args.out}.failed.csv",
            file=sys.stderr,
        )
        return EXIT_CASES_FAILED
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    check_path_arguments(args)
    from radpath.contract.predictions_csv import merge_predictions

    n = merge_predictions(args.out, args.shards)
    print(f"merged {n} rows from {len(args.shards)} shards into {args.out}", file=sys.stderr)
    if args.labels:
        from radpath.contract.metrics import evaluate_files, format_scores

        scores = evaluate_files(args.out, args.labels)
        _note_unlabelled(scores, args.labels)
        print_json(scores) if args.json else print(format_scores(scores))
    return 0


def _case_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("case_dir", nargs="?", help="Radiology/<ID>/ folder (or give the four files)")
    for seq in SEQUENCE_FLAGS:
        s.add_argument(f"--{seq}", help=f"{seq} NIfTI file")
    s.add_argument(
        "--case-id",
        help="name of the case in the output (default: the folder name, or the FLAIR file name minus _flair)",
    )


def _prepare_arguments(s: argparse.ArgumentParser, what: str) -> None:
    s.add_argument("--prepare", action="store_true", help=f"prepare first (radpath prepare; radpath[prepare]): {what}")
    s.add_argument("--prepared-dir", help="with --prepare: keep the prepared case(s) here (resumable)")


def add_parsers(sub) -> None:
    """The client's subcommands (core install: no TensorFlow, JAX or Flax)."""
    s = sub.add_parser("inspect", help="check one case and find its max-tumour slice")
    _case_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("evaluate", help="challenge metrics of a predictions CSV against a labels CSV")
    s.add_argument("predictions")
    s.add_argument("labels", help="labels CSV (rows with a blank class are skipped, with a note)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    server_help = "HOST:PORT of the gRPC server (default $RADPATH_SERVER or localhost:8500)"
    s = sub.add_parser("classify", help="classify one case through the server")
    _case_arguments(s)
    s.add_argument("--age-days", type=float, help="patient age in days (used if the model takes age; a warning if not)")
    s.add_argument("--server", default=None, help=server_help)
    s.add_argument("--model", default="glioma")
    s.add_argument("--version", type=int, help="ask for this model version (default: the latest)")
    s.add_argument("--tta", action="store_true", help="average over neighbouring slices and flips (6 views)")
    s.add_argument("--timeout", type=positive_seconds, default=30.0, help="seconds per server call (default 30)")
    s.add_argument(
        "--explain",
        metavar="OUT.png",
        help="also write the model input with the attribution map of the "
        "predicted class (served 'explain' signature) and the tumour outline",
    )
    _prepare_arguments(
        s,
        "CASE_DIR is a study: a DICOM folder or .zip, or four native NIfTI; --case-id names it "
        "and --flair ... choose series",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser(
        "classify-cohort",
        help="classify every case of a cohort into a predictions CSV",
        description=f"Exit codes: 0 every case classified; {EXIT_CASES_FAILED} finished, but some "
        f"cases failed (listed in OUT.failed.csv); {EXIT_ERROR} an error or the server "
        "stayed unavailable (rerun to continue).",
    )
    s.add_argument("cohort")
    s.add_argument("--out", required=True, help="predictions CSV (resumes if it exists)")
    s.add_argument("--server", default=None, help=server_help)
    s.add_argument("--model", default="glioma")
    s.add_argument("--workers", type=whole_number(1), default=2, help="cases in flight at once")
    s.add_argument("--shard", help="I/N: only the I-th of N stable shards (Kubernetes Indexed Jobs)")
    s.add_argument("--tta", action="store_true")
    s.add_argument("--timeout", type=positive_seconds, default=60.0, help="seconds per server call (default 60)")
    s.add_argument(
        "--retries", type=whole_number(0), default=4, help="retries with backoff while the server is unavailable"
    )
    s.add_argument("--quiet", action="store_true")
    _prepare_arguments(s, "COHORT is a folder of studies (one sub-folder or .zip each, named by case ID)")
    s.set_defaults(func=cmd_classify_cohort)

    s = sub.add_parser("merge-predictions", help="merge shard CSVs into one (and score them if labels are given)")
    s.add_argument("out")
    s.add_argument("shards", nargs="+")
    s.add_argument("--labels", help="labels CSV: print the challenge metrics of the merged file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_merge)
