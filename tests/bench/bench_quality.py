"""Benchmark: input quality checks (preprocess.quality) on synthetic cases and, optionally, real ones.

    python tests/bench/bench_quality.py [REAL_FOLDER] [--cases 40] [--styles broad,train,heldout]
                                        [--shape 96,96,62] [--full 6] [-v]

Per generator style, over `--cases` synthetic cases (in memory, 1 mm):
- swap detection: FLAIR<->T2 and T1<->T1ce swapped files flagged (T1/T1ce also split by whether the
  case enhances at all: without enhancement there is no evidence, see preprocess/quality.py);
- swap false alarms on the unswapped case (target for both: >= 95 % flagged, <= 2 % false alarms);
- `not-skull-stripped` on a skull-and-scalp variant, the same with bright marrow (no dark gap) and
  a head reaching the bottom face, and its false alarms on the clean case;
- `resampled` on a 2 mm variant and on a cubic float resample, and its rate on the clean case by
  the generator's background kind (zero: a false alarm; residue: a resample, should be flagged;
  z-scored: not a resample);
- time of `quality_warnings` per case.
`--full N` checks N clean full-size (240 x 240 x 155) cases (any warning is a false alarm) and
times them. With REAL_FOLDER (a cohort with Radiology/<ID>/...), every real case's warnings and
measures are printed, and its swapped, skull and 2 mm variants: real cases are unswapped, so a swap
warning on the original is a false alarm.
Not collected by pytest: the numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for tests.preprocess

from radpath.preprocess import load_case
from radpath.preprocess.quality import quality_measures, warnings_from
from tests.preprocess.test_quality import (
    clean_style,
    downsampled,
    float_interpolated,
    swapped,
    synthetic_case,
    with_skull,
)

CPU_TIMES: list[float] = []


def codes_of(case) -> tuple[set[str], object, float]:
    """(codes, measures, wall seconds); the CPU seconds go to CPU_TIMES (these machines are shared:
    wall time includes waiting for a core)."""
    t, c = time.perf_counter(), time.process_time()
    m = quality_measures(case)
    found = {w.code for w in warnings_from(case.case_id, m)}
    CPU_TIMES.append(time.process_time() - c)
    return found, m, time.perf_counter() - t


def rate(flags: list[bool]) -> str:
    return f"{100 * np.mean(flags):5.1f} % ({sum(flags)}/{len(flags)})" if flags else "   -"


def synthetic(styles: list[str], cases: int, shape: tuple[int, int, int], seed: int, verbose: bool) -> None:
    total = defaultdict(list)
    for style in styles:
        r = defaultdict(list)
        times = []
        cpu = []
        for i in range(cases):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                case, info = synthetic_case(i, style, seed=seed, shape=shape)
            clean, m, dt = codes_of(case)
            times.append(dt)
            cpu.append(CPU_TIMES[-1])
            ft, m_ft, _ = codes_of(swapped(case, "flair", "t2"))
            tc, m_tc, _ = codes_of(swapped(case, "t1", "t1ce"))
            enh = "enhancing" if info.get("enhancing") else "not enhancing"
            bg = info.get("background", "zero")
            r["swap FLAIR/T2 flagged"].append("swap-flair-t2" in ft)
            r["swap T1/T1ce flagged"].append("swap-t1-t1ce" in tc)
            r[f"swap T1/T1ce flagged, {enh}"].append("swap-t1-t1ce" in tc)
            r["false alarm swap-flair-t2 (unswapped)"].append("swap-flair-t2" in clean)
            r["false alarm swap-t1-t1ce (unswapped)"].append("swap-t1-t1ce" in clean)
            r["wrong swap code on a swapped case"].append(bool({"swap-t1-t1ce"} & ft) or bool({"swap-flair-t2"} & tc))
            r["false alarm not-skull-stripped (clean)"].append("not-skull-stripped" in clean)
            r[f"resampled on the clean case, background {bg}"].append("resampled" in clean)
            if i % 2 == 0:  # the variants cost more to build: every other case
                for label, variant, code in (
                    ("skull + scalp flagged", with_skull(case), "not-skull-stripped"),
                    ("head to the FOV edge flagged", with_skull(case, True), "not-skull-stripped"),
                    (
                        "skull with bright marrow (no dark gap) flagged",
                        with_skull(case, dark_skull=False),
                        "not-skull-stripped",
                    ),
                    ("2 mm grid flagged resampled", downsampled(case), "resampled"),
                    ("cubic float resample flagged resampled", float_interpolated(case), "resampled"),
                ):
                    r[label].append(code in codes_of(variant)[0])
            alarm = clean & {"swap-flair-t2", "swap-t1-t1ce", "not-skull-stripped"}
            if verbose and ("swap-flair-t2" not in ft or alarm or (info.get("enhancing") and "swap-t1-t1ce" not in tc)):
                print(
                    f"   {style} {case.case_id} {info.get('contrast_family')} {bg} {info.get('dtype')} {enh}: "
                    f"votes flair/t2 {m.flair_t2} t1/t1ce {m.t1_t1ce}; clean warnings {sorted(clean)}"
                )
        print(f"\nstyle {style}: {cases} cases of {shape}, seed {seed}")
        for k in sorted(r):
            print(f"  {k:48s} {rate(r[k])}")
            total[k] += r[k]
        print(
            f"  time per case: wall median {1000 * np.median(times):.1f} ms (max {1000 * np.max(times):.1f}), "
            f"CPU median {1000 * np.median(cpu):.1f} ms"
        )
    if len(styles) > 1:
        print(f"\nall styles ({', '.join(styles)})")
        for k in sorted(total):
            print(f"  {k:48s} {rate(total[k])}")


def full_size(n: int, styles: list[str], seed: int) -> None:
    """`n` clean full-size cases (exactly-zero background) cycling through `styles`: any warning is a
    false alarm; also the swapped variants and the time."""
    times, cpu = [], []
    alarms, ft_hits, tc_hits, enhancing = 0, 0, 0, 0
    for i in range(n):
        style = styles[i % len(styles)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            case, info = synthetic_case(i, clean_style(style), seed=seed, shape=(240, 240, 155))
        found, m, dt = codes_of(case)
        times.append(dt)
        cpu.append(CPU_TIMES[-1])
        ft, _, dt_ft = codes_of(swapped(case, "flair", "t2"))
        times.append(dt_ft)
        cpu.append(CPU_TIMES[-1])
        tc, _, _ = codes_of(swapped(case, "t1", "t1ce"))
        alarms += bool(found)
        ft_hits += "swap-flair-t2" in ft
        tc_hits += "swap-t1-t1ce" in tc
        enhancing += bool(info.get("enhancing"))
        print(
            f"  full-size {style} {case.case_id} ({info.get('contrast_family')}, {info.get('dtype')}, "
            f"{'enhancing' if info.get('enhancing') else 'not enhancing'}): {1000 * dt:.0f} ms, warnings "
            f"{sorted(found) or 'none'}; votes flair/t2 {m.flair_t2}, t1/t1ce {m.t1_t1ce}; swapped flagged: "
            f"flair/t2 {'swap-flair-t2' in ft}, t1/t1ce {'swap-t1-t1ce' in tc}"
        )
    print(
        f"full size 240x240x155, {n} clean cases: any warning (false alarm) {alarms}/{n}; FLAIR/T2 swap flagged "
        f"{ft_hits}/{n}; T1/T1ce swap flagged {tc_hits}/{n} ({enhancing} enhance)"
    )
    print(
        f"  quality_warnings per case: wall median {1000 * np.median(times):.0f} ms "
        f"(max {1000 * np.max(times):.0f}), CPU median {1000 * np.median(cpu):.0f} ms over {len(times)} runs"
    )


def real(folder: Path) -> None:
    root = folder / "Radiology" if (folder / "Radiology").is_dir() else folder
    print(f"\nreal cases under {root} (unswapped: a swap warning on the original is a false alarm)")
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        case = load_case(d)
        found, m, dt = codes_of(case)
        print(
            f"  {d.name}: shape {case.shape}, voxel {tuple(round(z, 2) for z in m.voxel_mm)} mm, "
            f"{1000 * dt:.0f} ms wall, {1000 * CPU_TIMES[-1]:.0f} ms CPU"
        )
        print(f"    warnings: {sorted(found) or 'none'}")
        print(
            f"    votes flair/t2 {m.flair_t2}, t1/t1ce {m.t1_t1ce}; residue {m.residue:.3f}, "
            f"ringing {m.ringing:.3f}, outside {m.outside:.3f}, holes {m.holes:.3f}, face {m.face:.3f}, "
            f"T1 surface rank {m.shell:.2f}"
        )
        for a, b, code in (("flair", "t2", "swap-flair-t2"), ("t1", "t1ce", "swap-t1-t1ce")):
            sw, _, _ = codes_of(swapped(case, a, b))
            print(f"    {a}<->{b} swapped: {'flagged' if code in sw else 'MISSED'} ({sorted(sw)})")
        for name, variant in (
            ("skull + scalp", with_skull(case)),
            ("skull with bright marrow", with_skull(case, dark_skull=False)),
            ("2 mm", downsampled(case)),
        ):
            print(f"    {name}: {sorted(codes_of(variant)[0])}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("real", nargs="?", type=Path, help="folder of real cases (Radiology/<ID>/...)")
    ap.add_argument("--cases", type=int, default=40, help="synthetic cases per style")
    ap.add_argument("--styles", default="broad,train,heldout")
    ap.add_argument("--shape", default="96,96,62")
    ap.add_argument("--full", type=int, default=6, help="clean full-size cases (false alarms, time)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every miss and false alarm")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    if args.cases:
        synthetic(args.styles.split(","), args.cases, shape, args.seed, args.verbose)
    if args.full:
        print()
        full_size(args.full, args.styles.split(","), args.seed)
    if args.real:
        real(args.real)


if __name__ == "__main__":
    main()
