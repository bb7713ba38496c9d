"""`radpath synth`: the arguments and the command; radpath/cli.py (the dispatcher) calls `add_parsers`.

Bad settings (no cases, a tiny shape, an unknown style) raise `SynthSettingsError`, a `RadPathError`:
the CLI prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from radpath.contract.errors import RadPathError

from .style import STYLES


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `radpath synth` on the dispatcher's subparsers."""
    s = sub.add_parser("synth", help="write a SYNTHETIC cohort in the CPM-RadPath layout")
    add_synth_arguments(s)
    s.set_defaults(func=run_synth)


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder")
    parser.add_argument(
        "--cases", type=int, default=221, help="number of tumour cases (default 221, the real release's size)"
    )
    parser.add_argument(
        "--controls", type=int, default=0, help="extra tumour-free control brains (no class; not in the labels CSV)"
    )
    parser.add_argument(
        "--style",
        default="broad",
        metavar="NAME",
        help=f"randomisation ranges, one of {', '.join(STYLES)} (default broad: the whole space)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", type=int, nargs=3, default=[240, 240, 155], metavar=("X", "Y", "Z"))
    parser.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing cohort in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_synth(args: argparse.Namespace) -> int:
    from .cohort import check_shape, plan_cohort, write_synthetic_cohort
    from .style import get_style

    out = Path(args.out)
    style = get_style(args.style)  # fail on a bad setting before touching the disk
    shape = check_shape(args.shape)
    plan_cohort(args.cases, args.seed, controls=args.controls)
    if (out / "training_data_classification_labels.csv").exists() and not args.force:
        raise RadPathError(f"{out} already holds a cohort; choose another folder or pass --force to overwrite it")
    t0 = time.perf_counter()
    plans = write_synthetic_cohort(
        out,
        cases=args.cases,
        seed=args.seed,
        shape=shape,
        workers=args.workers,
        progress=not args.quiet,
        style=style,
        controls=args.controls,
    )
    counts = {c: sum(p.label == c for p in plans) for c in "AOG"}
    controls = sum(p.control for p in plans)
    print(
        f"wrote {len(plans)} SYNTHETIC cases (A {counts['A']}, O {counts['O']}, G {counts['G']}, "
        f"{controls} tumour-free controls; style {style.name}) to {out} in {time.perf_counter() - t0:.1f} s; "
        f"ground-truth masks and appearance.csv in {out / 'Segmentation'}"
    )
    return 0
