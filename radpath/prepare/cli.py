"""`radpath prepare`: a DICOM study (folder or zip) or four native NIfTI -> a model-ready case.

Light at import (the dispatcher imports it for `--help`); pydicom and SimpleITK load inside the
command. Progress goes to stderr one line per stage; the summary (which series became which
sequence and why, time per stage) to stdout, or the whole report with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radpath.contract.model_io import CHANNELS as SEQUENCES


def overrides_of(args: argparse.Namespace) -> dict[str, str]:
    return {q: getattr(args, q) for q in SEQUENCES if getattr(args, q, None)}


def stage_printer(quiet: bool):
    def show(stage: str, i: int, n: int) -> None:
        if not quiet:
            print(f"[{i}/{n}] {stage}", file=sys.stderr, flush=True)

    return show


def summary_lines(report: dict) -> list[str]:
    lines = [f"{report['case_id']}: prepared in {report['total_s']:.0f} s ({report['input']['kind']} input)"]
    for q, s in report["sequences"].items():
        lines.append(f"  {q:5s} <- {s['series']}: {s['reason']}")
    for d in report["set_aside"]:
        lines.append(f"  set aside {d['series']}: {d['reason']}")
    lines.append("  time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timings_s"].items()))
    return lines


def cmd_prepare(args: argparse.Namespace) -> int:
    from .pipeline import prepare_study

    p = prepare_study(args.input, args.out, args.case_id, overrides_of(args), stage_printer(args.quiet or args.json))
    if args.json:
        print(json.dumps(p.report, indent=2, default=str))
    else:
        print("\n".join(summary_lines(p.report)))
        print(f"  written: {p.case_dir} (report {p.report_path.name}, QC picture {p.qc_png.name})")
    return 0


def add_series_flags(s: argparse.ArgumentParser) -> None:
    for q in SEQUENCES:
        s.add_argument(
            f"--{q}",
            metavar="SERIES",
            help=f"the {q} series: its series number, UID or exact description (a file name for NIfTI input)",
        )


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "prepare",
        help="DICOM study (folder or .zip) or four native NIfTI -> a case on the BraTS grid",
        description="Finds FLAIR, T1, T1ce and T2 from the DICOM tags, co-registers them, registers them to the "
        "SRI24 atlas (1 mm, 240x240x155, the BraTS grid), removes the skull and writes OUT/ID/ID_{flair,t1,t1ce,t2}"
        ".nii.gz with a QC picture and a JSON report. No patient data is written: only the case ID you give.",
    )
    s.add_argument("input", help="DICOM folder, .zip of one, or a folder of four native-space NIfTI")
    s.add_argument("--out", required=True, help="folder that receives ID/ (e.g. a cohort's Radiology/)")
    s.add_argument("--case-id", required=True, help="the name of the case in every output (never a patient's ID)")
    add_series_flags(s)
    s.add_argument("--json", action="store_true", help="print the whole report as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_prepare)


def prepare_for_classify(args: argparse.Namespace) -> dict:
    """`classify --prepare STUDY --case-id ID`: prepare the study, then point `args` at the prepared
    case (the --flair ... flags chose series; they are cleared). Returns what the result shows."""
    import tempfile

    from radpath.contract.errors import RadPathError

    from .pipeline import prepare_study

    if not args.case_dir:
        raise RadPathError("--prepare needs the study: a DICOM folder, a .zip of one, or a folder of four NIfTI")
    if not args.case_id:
        raise RadPathError("--prepare needs --case-id (the name of the case in every output; never a patient's ID)")
    out = args.prepared_dir or tempfile.mkdtemp(prefix="radpath-prepared-")
    p = prepare_study(args.case_dir, out, args.case_id, overrides_of(args), stage_printer(args.json))
    args.case_dir = str(p.case_dir)
    for q in SEQUENCES:
        setattr(args, q, None)
    return {
        "case_dir": str(p.case_dir),
        "sequences": {q: {"series": s["series"], "reason": s["reason"]} for q, s in p.report["sequences"].items()},
        "qc_picture": str(p.qc_png),
        "report": str(p.report_path),
        "timings_s": p.report["timings_s"],
    }


def prepare_for_cohort(args: argparse.Namespace) -> tuple[str, list[tuple[str, str]]]:
    """`classify-cohort --prepare STUDIES`: prepare every study (resumable); the cohort root to
    classify and the studies that failed, with their reasons."""
    from radpath.contract.errors import RadPathError

    from .cohort import prepare_cohort

    if args.shard:
        raise RadPathError("--prepare with --shard: prepare once (radpath classify-cohort --prepare without --shard)")
    root = args.prepared_dir or f"{args.out}.prepared"

    def show(case_id: str, i: int, n: int) -> None:
        if not args.quiet:
            print(f"[prepare {i}/{n}] {case_id}", file=sys.stderr, flush=True)

    out_root, failed = prepare_cohort(args.cohort, root, show)
    if not any((Path(out_root) / "Radiology").iterdir()):
        raise RadPathError(
            f"no study of {args.cohort} could be prepared "
            f"({len(failed)} failed; reasons in {out_root}/prepare.failed.csv)"
        )
    return str(out_root), failed
