"""`radpath train` and `radpath export`: thin entry points over `train.run` and `train.export`.

Importing this module is cheap (train.config only): jax, flax and tensorflow load inside the
commands, so `radpath --help` stays instant and a core install lists these commands and, when
run, names the extra to install.
"""

from __future__ import annotations

import argparse
import json
import os

from radpath.contract.signature import DEFAULT_MODEL_NAME

from .config import ConfigError, TrainConfig

TRAIN_DEFAULTS = TrainConfig()
"""Defaults shown in --help (train.config imports no jax)."""


CPU_COLLECTIVE_TIMEOUT_S = 900
"""How long a CPU device waits for the others at a pmap all-reduce before XLA aborts the process. XLA's
default (40 s) killed a training run on a busy 2-core machine (one device's thread starved by other
jobs: "Termination timeout for all reduce ... Exiting"); a slow step is not a hung one."""


def want_devices(n: int | None) -> None:
    """On a CPU, N virtual devices need XLA_FLAGS before jax is imported (GPUs are unaffected); with
    them a patient all-reduce timeout (CPU_COLLECTIVE_TIMEOUT_S)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n and n > 1 and "xla_force_host_platform_device_count" not in flags:
        flags = f"{flags} --xla_force_host_platform_device_count={n}"
    if "xla_cpu_collective_call_terminate_timeout_seconds" not in flags:
        flags = f"{flags} --xla_cpu_collective_call_terminate_timeout_seconds={CPU_COLLECTIVE_TIMEOUT_S}"
    os.environ["XLA_FLAGS"] = flags.strip()


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from --config FILE, then the dedicated flags given, then --set key=value (later wins)."""
    config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    flags = {
        "width": args.width,
        "stages": None if args.stages is None else tuple(args.stages),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "use_age": args.use_age,
        "tta": None if args.no_tta is None else not args.no_tta,
        "init_weights": args.init_weights,
    }
    config = TrainConfig.from_dict({k: v for k, v in flags.items() if v is not None}, "command line", config)
    return config.with_settings(args.set or [])


def cmd_train(args: argparse.Namespace) -> int:
    from radpath.contract.errors import RadPathError

    from .pretrained import check_fits, weights_meta

    try:
        config = resolve_config(args)
        meta = weights_meta(config.init_weights) if config.init_weights else {}
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise RadPathError(str(exc)) from None
    if meta and config.resnet_variant == TRAIN_DEFAULTS.resnet_variant:  # converted ImageNet weights name theirs
        config = config.replace(resnet_variant=meta["variant"])
    if args.show_config:
        print(config.to_json())
        return 0
    if not args.out:
        raise RadPathError("radpath train: --out RUN_DIR is required (the run folder)")
    want_devices(args.devices)
    from radpath.contract.metrics import format_scores

    from .run import run_training

    try:
        if config.init_weights:
            check_fits(config.init_weights, config)  # before the cohort is read, not after
        report = run_training(
            args.cohort,
            args.out,
            config,
            folds=args.folds,
            holdout=args.holdout,
            devices=args.devices,
            cache_dir=args.cache,
            labels=args.labels,
            progress=not args.quiet,
        )
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
    from radpath.contract.errors import RadPathError

    from .export import export_run

    try:
        summary = export_run(args.run_dir, args.model_base, args.name, args.force)
    except FileNotFoundError as exc:
        raise RadPathError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
    else:
        b = summary["blessing"]
        verdict = (
            "first version"
            if b is None
            else f"blessed: held-out mean {b['new_mean']:.4f} vs version {b['latest_version']} {b['latest_mean']:.4f}"
            if b.get("blessed")
            else "pushed with --force"
        )
        print(
            f"pushed {summary['model']} version {summary['version']} to {summary['path']} ({verdict}; "
            f"SavedModel vs JAX max difference {summary['parity_max_abs_diff']:.1e})"
        )
    return 0


def cmd_evaluate_model(args: argparse.Namespace) -> int:
    from radpath.contract.errors import RadPathError
    from radpath.contract.metrics import format_scores

    from .cohort_eval import evaluate_cohort

    try:
        scores = evaluate_cohort(args.run_dir, args.cohort, args.name, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        raise RadPathError(str(exc)) from None
    style = f" (generator style {scores['style']})" if scores.get("style") else ""
    print(f"{args.name}{style}: {scores['data']}\n{format_scores(scores)}")
    print(f"written to {args.run_dir}/metrics.json ('external') and model_card.md")
    return 0


def add_parsers(sub) -> None:
    d = TRAIN_DEFAULTS
    s = sub.add_parser("train", help="train and cross-validate the ResNet on a cohort (extra: train)")
    s.add_argument("cohort", help="cohort root (holds Radiology/ and the labels CSV)")
    s.add_argument("--out", help="run folder, required for training (resumes if it holds an interrupted run)")
    s.add_argument("--labels", help="labels CSV (default: the one in the cohort root)")
    s.add_argument(
        "--config",
        metavar="FILE",
        help="JSON file of training settings, e.g. configs/demo.json (the flags below and --set override it)",
    )
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any training setting, e.g. --set label_smoothing=0.05 --set stages=3,4,6,3 (repeatable; wins last)",
    )
    s.add_argument("--show-config", action="store_true", help="print the resolved settings as JSON and exit")
    s.add_argument("--width", type=int, help=f"ResNet base width (64 = standard; default {d.width})")
    s.add_argument(
        "--stages",
        type=int,
        nargs=4,
        metavar="N",
        help=f"bottleneck blocks per stage (default {list(d.stages)} = ResNet50; 1 1 1 1 for quick checks)",
    )
    s.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    s.add_argument("--batch-size", type=int, help=f"global batch, split over devices (default {d.batch_size})")
    s.add_argument("--lr", type=float, help=f"peak learning rate (default {d.learning_rate})")
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none)")
    s.add_argument("--holdout", type=float, default=0.2, help="fraction held out for evaluation and blessing")
    s.add_argument("--devices", type=int, help="local devices for pmap (default: all; on a CPU, N virtual devices)")
    s.add_argument("--seed", type=int, help=f"default {d.seed}")
    s.add_argument("--use-age", action="store_true", default=None, help="feed age next to the image features")
    s.add_argument("--no-tta", action="store_true", default=None, help="no test-time averaging over slices and flips")
    s.add_argument(
        "--init-weights", help="starting weights: .npz from `radpath convert-weights` (ImageNet; needs --width 64)"
    )
    s.add_argument("--cache", help="example cache folder (default RUN_DIR/cache)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "evaluate-model", help="score a trained run on another cohort (other style, subtle end; extra: train)"
    )
    s.add_argument("run_dir")
    s.add_argument("cohort", help="cohort root with a labels CSV")
    s.add_argument("--name", required=True, help="name of this evaluation in metrics.json and the model card")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate_model)

    s = sub.add_parser("export", help="push a trained run as a new SavedModel version (jax2tf; extra: train)")
    s.add_argument("run_dir")
    s.add_argument("--model-base", required=True, help="model base folder served by TF Serving")
    s.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name (default %(default)s)")
    s.add_argument("--force", action="store_true", help="push even if it scores below the latest version")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_export)
