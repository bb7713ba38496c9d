"""Benchmark: tumour detection across conspicuity, false "found" on tumour-free brains, real cases.

    python tests/bench/bench_detection.py [REAL_FOLDER] [--cases 20] [--controls 40] [--size half|full]

Targets (issue 8): at every conspicuity level down to FLAIR tumour robust z 1.5, >= 95 % of chosen
slices hold >= 50 % of the maximum tumour area (whatever the detection's confidence: a confident
find, a sub-threshold candidate or the brain's centre); <= 5 % of tumour-free brains give "tumour
found". The share of confident finds per level is printed too.

Conspicuity level z: the median FLAIR robust z-score of the tumour inside the brain (median and
IQR of the brain, tumour included), the measure of ../shared/DATA.md (real cases: median 2.6-2.9).
When the generator offers styles (`synth.style.STYLES`), each level is drawn from style `broad`
(every contrast family, noise, bias, blur, slice thickness and file quirk) with `flair_z=(z, z)`,
and the controls are `broad` brains without a lesion; otherwise the generator's tumour is made
subtler after the fact: every tumour voxel's deviation from the normal brain's median is scaled by
one factor per sequence (FLAIR to reach z, T2 to reach 0.6 z, as on real scans), and the noise that
scaling removed is added back.

With REAL_FOLDER (a cohort layout: Radiology/<ID>/..., optional Segmentation/<ID>_seg*.nii.gz, any
label > 0.5 is tumour), prints per case: the slice chosen vs the reference's largest slice, whether
a tumour was found, its share of the brain and the warnings. Not collected by pytest: printed, not
asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from radpath.preprocess import CaseError, detection_warnings, find_tumor, load_case
from radpath.preprocess.case import Case
from radpath.preprocess.read_case import _to_canonical, read_volume
from radpath.synth.cohort import plan_cohort, synthesize_case

LEVELS = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
SHAPES = {"full": (240, 240, 155), "half": (120, 120, 78), "small": (96, 96, 62)}


def _robust(values: np.ndarray) -> tuple[float, float]:
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return float(med), float((q75 - q25) / 1.349)


def tumour_z(volume: np.ndarray, brain: np.ndarray, tumour: np.ndarray) -> float:
    """Median robust z of the tumour voxels against the whole brain (tumour included)."""
    med, scale = _robust(volume[brain].astype(np.float32))
    return float((np.median(volume[tumour].astype(np.float32)) - med) / scale)


def set_conspicuity(
    volumes: dict[str, np.ndarray], seg: np.ndarray, z: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Volumes whose tumour has FLAIR robust z `z` (and T2 0.6 z, never raised): see the docstring."""
    out = dict(volumes)
    brain = volumes["flair"] != 0
    tumour = (seg > 0) & brain
    normal = brain & ~tumour
    for name, target in (("flair", z), ("t2", 0.6 * z)):
        v = volumes[name].astype(np.float32)
        if tumour_z(v, brain, tumour) <= target:
            continue
        ref = float(np.median(v[normal]))
        # the noise level: robust SD of the difference of neighbouring voxels in normal tissue
        diff = (v[1:] - v[:-1])[normal[1:] & normal[:-1]]
        noise = _robust(diff)[1] / np.sqrt(2)
        lo, hi = 0.0, 1.0
        e = rng.standard_normal(int(tumour.sum())).astype(np.float32)
        for _ in range(30):  # bisection on the scaling factor
            a = (lo + hi) / 2
            w = v.copy()
            w[tumour] = ref + a * (v[tumour] - ref) + np.sqrt(max(1 - a * a, 0.0)) * noise * e
            if tumour_z(w, brain, tumour) > target:
                hi = a
            else:
                lo = a
        w = v.copy()
        w[tumour] = ref + lo * (v[tumour] - ref) + np.sqrt(max(1 - lo * lo, 0.0)) * noise * e
        dtype = volumes[name].dtype
        w = np.rint(w).astype(dtype) if dtype.kind in "iu" else w.astype(dtype)
        w[tumour & (w == 0)] = 1
        out[name] = w
    return out


def _styles():
    """`synth.style.STYLES` when the generator takes a style (`synthesize_case(..., style=...)`)."""
    import inspect

    try:
        from radpath.synth.style import STYLES
    except ImportError:
        return None
    return STYLES if "style" in inspect.signature(synthesize_case).parameters else None


def generated_case(
    index: int, seed: int, shape: tuple[int, int, int], z: float | None, with_tumor: bool = True, style: str = "broad"
) -> tuple[Case, np.ndarray, float]:
    """(case, ground-truth tumour mask, measured FLAIR tumour z) at level `z` (None: the style's range)."""
    plan = plan_cohort(index + 1, seed)[index]
    styles = _styles()
    if styles is not None:
        look = styles[style] if z is None else dataclasses.replace(styles[style], flair_z=(z, z))
        volumes, seg, info = synthesize_case(plan, seed, shape, with_tumor=with_tumor, style=look)
        measured = float(info["flair_z"])
    else:
        volumes, seg, _ = synthesize_case(plan, seed, shape, with_tumor=with_tumor)
        if with_tumor and z is not None:
            volumes = set_conspicuity(volumes, seg, z, np.random.default_rng([seed, index, 7]))
        brain = volumes["flair"] != 0
        measured = tumour_z(volumes["flair"], brain, (seg > 0) & brain) if (seg > 0).any() else float("nan")
    return Case(plan.case_id, volumes, np.eye(4)), seg > 0, measured


def slice_hit(areas: np.ndarray, tumor) -> bool:
    """The chosen slice (found, possible or the brain's centre) holds >= half the max tumour area."""
    return bool(areas[tumor.index] >= 0.5 * areas.max())


def run_levels(args) -> None:
    shape = SHAPES[args.size]
    print(
        f"generator: {'radpath.synth.style' if _styles() is not None else 'synth (contrast scaled after the fact)'}; "
        f"shape {shape}; {args.cases} cases per level, {args.controls} controls"
    )
    for z in LEVELS:
        hits, found, measured, misses, secs = 0, 0, [], [], []
        for i in range(args.cases):
            case, tumour, mz = generated_case(i, args.seed + int(z * 10), shape, z)
            t0 = time.perf_counter()
            tumor = find_tumor(case)
            secs.append(time.perf_counter() - t0)
            areas = tumour.sum(axis=(0, 1))
            hit = slice_hit(areas, tumor)
            hits += hit
            found += tumor.found
            measured.append(mz)
            if not hit:
                how = "found" if tumor.found else "possible" if tumor.possible else "centre"
                misses.append(f"{i}:{how} {tumor.index}/{int(areas.argmax())}")
        print(
            f"  level z {z:3.1f} (measured median {np.median(measured):.2f}): slice hits {hits}/{args.cases} = "
            f"{hits / args.cases:.3f} (target >= 0.95), found {found}/{args.cases}, "
            f"{np.median(secs) * 1000:.0f} ms/case; misses (how chosen/reference) {' '.join(misses) or '-'}"
        )
    fp = 0
    for i in range(args.controls):
        case, _, _ = generated_case(i, args.seed + 999, shape, None, with_tumor=False)
        fp += find_tumor(case).found
    print(
        f"  controls: 'tumour found' on {fp}/{args.controls} tumour-free brains = "
        f"{fp / max(args.controls, 1):.3f} (target <= 0.05)"
    )


def _reference(root: Path, case_id: str) -> np.ndarray | None:
    seg_dir = root / "Segmentation"
    if not seg_dir.is_dir():
        return None
    files = sorted(seg_dir.glob(f"{case_id}_seg*.nii*"))
    if not files:
        return None
    seg, affine = read_volume(files[0])
    return _to_canonical(seg, affine)[0].astype(np.float32) > 0.5


def run_real(root: Path) -> None:
    print(f"real cases in {root}:")
    for d in sorted((root / "Radiology").iterdir()):
        try:
            case = load_case(d)
            tumor = find_tumor(case)
            warnings = [w.code for w in detection_warnings(case)]
        except CaseError as exc:
            print(f"  {d.name}: refused: {exc}")
            continue
        ref = _reference(root, d.name)
        line = f"  {d.name}: shape {case.shape}, slice {tumor.index}, found {tumor.found}, tumour {tumor.voxels} voxels"
        if ref is not None:
            areas = ref.sum(axis=(0, 1))
            mask = tumor.mask(case) if tumor.found else np.zeros(case.shape, bool)
            inter = (mask & ref).sum()
            dice = 2 * inter / max(mask.sum() + ref.sum(), 1)
            line += (
                f"; reference largest slice {int(areas.argmax())}, chosen slice holds "
                f"{areas[tumor.index] / areas.max():.2f} of the max area, Dice {dice:.2f}"
            )
        print(line + f"; warnings {warnings or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("real", nargs="?", type=Path, help="folder of real cases (cohort layout)")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--controls", type=int, default=40)
    ap.add_argument("--size", choices=sorted(SHAPES), default="half")
    ap.add_argument("--seed", type=int, default=300)
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args()
    if not args.no_synth:
        run_levels(args)
    if args.real:
        run_real(args.real)


if __name__ == "__main__":
    main()
