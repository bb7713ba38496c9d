"""`radpath`: one command, one subcommand per job, each a thin wrapper over an importable function.

Heavy libraries (jax, tensorflow) are imported inside the subcommands, so `radpath --help` is
instant. Input errors (RadPathError) become one line on stderr and exit code 1, no traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from preprocess.errors import RadPathError
from train.config import TrainConfig

log = logging.getLogger("radpath")


def _json_default(o):
    import numpy as np
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_json(obj) -> None:
    """JSON on stdout; NaN becomes null (strict JSON has no NaN)."""
    import math

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o
    print(json.dumps(clean(obj), indent=2, default=_json_default))


# ---------------------------------------------------------------- data
def cmd_synth(args: argparse.Namespace) -> int:
    from synth.cohort import write_synthetic_cohort
    out = Path(args.out)
    if (out / "training_data_classification_labels.csv").exists() and not args.force:
        raise RadPathError(f"{out} already holds a cohort; choose another folder or pass --force to overwrite it")
    t0 = time.perf_counter()
    plans = write_synthetic_cohort(out, cases=args.cases, seed=args.seed, shape=tuple(args.shape),
                                   workers=args.workers, progress=not args.quiet)
    counts = {c: sum(p.label == c for p in plans) for c in "AOG"}
    print(f"wrote {len(plans)} SYNTHETIC cases (A {counts['A']}, O {counts['O']}, G {counts['G']}) to {out} "
          f"in {time.perf_counter() - t0:.1f} s; ground-truth masks in {out / 'Segmentation'}")
    return 0


def inspect_case(case_dir: str | Path) -> dict:
    """What `radpath inspect` reports: where the tumour is, and the checks that passed."""
    from preprocess import find_tumor, load_case, model_input
    t0 = time.perf_counter()
    case = load_case(case_dir)
    tumor = find_tumor(case)
    x = model_input(case, tumor.index)
    return {"case_id": case.case_id, "slice_index": tumor.index, "tumor_voxels": tumor.voxels,
            "tumor_found": tumor.found, "shape": list(case.shape),
            "stored_orientation": case.source_orientation, "model_input_shape": list(x.shape),
            "seconds": round(time.perf_counter() - t0, 3)}


def cmd_inspect(args: argparse.Namespace) -> int:
    info = inspect_case(args.case_dir)
    if args.json:
        print_json(info)
    else:
        found = f"{info['tumor_voxels']} tumour voxels" if info["tumor_found"] else "NO tumour found (brain centre used)"
        print(f"{info['case_id']}: shape {tuple(info['shape'])}, max-tumour slice {info['slice_index']}, {found}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from train.challenge_metrics import evaluate_files, format_scores
    scores = evaluate_files(args.predictions, args.labels)
    print_json(scores) if args.json else print(format_scores(scores))
    return 0


# ---------------------------------------------------------------- training
def _want_devices(n: int | None) -> None:
    """On a CPU, N virtual devices need XLA_FLAGS before jax is imported (GPUs are unaffected)."""
    import os
    flags = os.environ.get("XLA_FLAGS", "")
    if n and n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def cmd_train(args: argparse.Namespace) -> int:
    _want_devices(args.devices)
    from train.challenge_metrics import format_scores
    from train.run import run_training
    config = TrainConfig(width=args.width, stages=tuple(args.stages), epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.lr, seed=args.seed, use_age=args.use_age,
                         tta=not args.no_tta, init_weights=args.init_weights)
    try:
        report = run_training(args.cohort, args.out, config, folds=args.folds, holdout=args.holdout,
                              devices=args.devices, cache_dir=args.cache, labels=args.labels,
                              progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        raise RadPathError(str(exc)) from None
    data = report["data"]
    print(f"\ndata: {data['description']}")
    for name in ("cross_validation", "holdout"):
        if report[name]:
            print(f"\n{name.replace('_', '-')}:\n{format_scores(report[name])}")
    if data["cases_not_used"]:
        print(f"\n{len(data['cases_not_used'])} cases not used (reasons in metrics.json)")
    print(f"\nrun folder {args.out}: metrics.json, model_card.md, model/ ({report['seconds']} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from train.export import export_run
    try:
        summary = export_run(args.run_dir, args.model_base, args.name, args.force)
    except FileNotFoundError as exc:
        raise RadPathError(str(exc)) from None
    if args.json:
        print_json(summary)
    else:
        b = summary["blessing"]
        verdict = ("first version" if b is None else
                   f"blessed: held-out mean {b['new_mean']:.4f} vs version {b['latest_version']} {b['latest_mean']:.4f}"
                   if b.get("blessed") else "pushed with --force")
        print(f"pushed {summary['model']} version {summary['version']} to {summary['path']} ({verdict}; "
              f"SavedModel vs JAX max difference {summary['parity_max_abs_diff']:.1e})")
    return 0


# ---------------------------------------------------------------- serving and client
def _server(args: argparse.Namespace) -> str:
    import os
    return args.server or os.environ.get("RADPATH_SERVER", "localhost:8500")


def cmd_serve(args: argparse.Namespace) -> int:
    from serving import MODELS_CONFIG
    from serving.launch import serve
    try:
        serve(args.model_base, args.model_name, args.grpc_port, args.rest_port,
              args.models_config or MODELS_CONFIG, batching=not args.no_batching, backend=args.backend)
    except (FileNotFoundError, OSError) as exc:
        raise RadPathError(str(exc)) from None
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from client.grpc_client import GlioClient
    files = {seq: getattr(args, seq) for seq in ("flair", "t1", "t1ce", "t2")}
    if args.case_dir and any(files.values()):
        raise RadPathError("give either CASE_DIR or the four files --flair --t1 --t1ce --t2, not both")
    if not args.case_dir:
        missing = [f"--{k}" for k, v in files.items() if not v]
        if missing:
            raise RadPathError(f"give CASE_DIR or all four files (missing {' '.join(missing)})")
    source = args.case_dir or files
    with GlioClient(_server(args), args.model, args.version, timeout=args.timeout) as client:
        result = client.classify(source, args.age_days, tta=args.tta)
    if args.json:
        print_json(result.as_dict())
    else:
        probs = "  ".join(f"{c} {p:.3f}" for c, p in result.probabilities.items())
        note = "" if result.tumor_found else "  (no tumour found: brain centre slice used)"
        print(f"{result.case_id}: {result.label}   [{probs}]   slice {result.slice_index}, "
              f"model {result.model} v{result.model_version}{note}")
    return 0


def cmd_classify_cohort(args: argparse.Namespace) -> int:
    from client.cohort_batch import classify_cohort
    s = classify_cohort(args.cohort, args.out, _server(args), args.model, args.workers, args.shard,
                        args.tta, args.timeout, args.retries, progress=not args.quiet)
    print(f"{s.written} cases classified, {s.skipped_done} already in {args.out}, {len(s.failed)} failed "
          f"({s.seconds} s)" + (f"; failures listed in {args.out}.failed.csv" if s.failed else ""))
    if s.stopped:
        raise RadPathError(f"stopped: {s.stopped}. Rerun the same command to continue; finished rows are kept")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from client.cohort_batch import merge_predictions
    n = merge_predictions(args.out, args.shards)
    print(f"merged {n} rows from {len(args.shards)} shards into {args.out}", file=sys.stderr)
    if args.labels:
        from train.challenge_metrics import evaluate_files, format_scores
        scores = evaluate_files(args.out, args.labels)
        print_json(scores) if args.json else print(format_scores(scores))
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radpath", description="Diffuse glioma class (A / O / G) from four MRI sequences.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a SYNTHETIC cohort in the CPM-RadPath layout")
    s.add_argument("out", help="output folder")
    s.add_argument("--cases", type=int, default=221, help="number of cases (default 221, the real release's size)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shape", type=int, nargs=3, default=[240, 240, 155], metavar=("X", "Y", "Z"))
    s.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    s.add_argument("--force", action="store_true", help="overwrite an existing cohort in OUT")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("inspect", help="check one case and find its max-tumour slice")
    s.add_argument("case_dir", help="Radiology/<ID>/ folder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("evaluate", help="challenge metrics of a predictions CSV against a labels CSV")
    s.add_argument("predictions")
    s.add_argument("labels")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("train", help="train and cross-validate the ResNet50 on a cohort")
    s.add_argument("cohort", help="cohort root (holds Radiology/ and the labels CSV)")
    s.add_argument("--out", required=True, help="run folder (resumes if it holds an interrupted run)")
    s.add_argument("--labels", help="labels CSV (default: the one in the cohort root)")
    s.add_argument("--width", type=int, default=TRAIN_DEFAULTS.width, help="ResNet50 base width (64 = standard; default %(default)s)")
    s.add_argument("--stages", type=int, nargs=4, default=[3, 4, 6, 3], metavar="N",
                   help="bottleneck blocks per stage (default 3 4 6 3 = ResNet50; 1 1 1 1 for quick checks)")
    s.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS.epochs)
    s.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS.batch_size, help="global batch, split over devices")
    s.add_argument("--lr", type=float, default=TRAIN_DEFAULTS.learning_rate)
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none)")
    s.add_argument("--holdout", type=float, default=0.2, help="fraction held out for evaluation and blessing")
    s.add_argument("--devices", type=int, help="local devices for pmap (default: all; on a CPU, N virtual devices)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--use-age", action="store_true", help="feed age next to the image features")
    s.add_argument("--no-tta", action="store_true", help="no test-time averaging over slices and flips")
    s.add_argument("--init-weights", help=".npz of ImageNet-style weights for the first layers")
    s.add_argument("--cache", help="example cache folder (default RUN_DIR/cache)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("export", help="push a trained run as a new SavedModel version (jax2tf)")
    s.add_argument("run_dir")
    s.add_argument("--model-base", required=True, help="model base folder served by TF Serving")
    s.add_argument("--name", default="glioma", help="model name (default %(default)s)")
    s.add_argument("--force", action="store_true", help="push even if it scores below the latest version")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("serve", help="serve SavedModels over gRPC and REST (TF Serving if installed, else built-in)")
    s.add_argument("--model-base", required=True, help="folder holding <name>/<version>/ SavedModels")
    s.add_argument("--model-name", help="serve only this model (default: every model in --models-config)")
    s.add_argument("--grpc-port", type=int, default=8500)
    s.add_argument("--rest-port", type=int, default=8501)
    s.add_argument("--models-config", help="TF Serving model config (default: serving/models.config)")
    s.add_argument("--no-batching", action="store_true", help="do not batch concurrent requests")
    s.add_argument("--backend", choices=["auto", "builtin", "tf-serving"], default="auto")
    s.set_defaults(func=cmd_serve)

    server_help = "HOST:PORT of the gRPC server (default $RADPATH_SERVER or localhost:8500)"
    s = sub.add_parser("classify", help="classify one case through the server")
    s.add_argument("case_dir", nargs="?", help="Radiology/<ID>/ folder (or give the four files)")
    for seq in ("flair", "t1", "t1ce", "t2"):
        s.add_argument(f"--{seq}", help=f"{seq} NIfTI file")
    s.add_argument("--age-days", type=float, help="patient age in days (used if the model takes age)")
    s.add_argument("--server", default=None, help=server_help)
    s.add_argument("--model", default="glioma")
    s.add_argument("--version", type=int, help="ask for this model version (default: the latest)")
    s.add_argument("--tta", action="store_true", help="average over neighbouring slices and flips (6 views)")
    s.add_argument("--timeout", type=float, default=30.0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("classify-cohort", help="classify every case of a cohort into a submission CSV")
    s.add_argument("cohort")
    s.add_argument("--out", required=True, help="predictions CSV (resumes if it exists)")
    s.add_argument("--server", default=None, help=server_help)
    s.add_argument("--model", default="glioma")
    s.add_argument("--workers", type=int, default=2, help="cases in flight at once")
    s.add_argument("--shard", help="I/N: only the I-th of N stable shards (Kubernetes Indexed Jobs)")
    s.add_argument("--tta", action="store_true")
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--retries", type=int, default=4, help="retries with backoff while the server is unavailable")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_classify_cohort)

    s = sub.add_parser("merge-predictions", help="merge shard CSVs into one (and score them if labels are given)")
    s.add_argument("out")
    s.add_argument("shards", nargs="+")
    s.add_argument("--labels", help="labels CSV: print the challenge metrics of the merged file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_merge)

    from client.web.cli import add_parsers as add_web_parsers  # web, web-worker, users (light imports)
    add_web_parsers(sub)
    return p


TRAIN_DEFAULTS = TrainConfig()
"""Defaults shown in --help (train.config imports no jax, so --help stays instant)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RadPathError as exc:
        print(f"radpath {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"radpath {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
