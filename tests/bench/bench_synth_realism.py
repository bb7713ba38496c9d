"""How real does the synthetic generator look? Tumour conspicuity and file quirks per style, and the
same statistics on a folder of real cases for comparison.

    python tests/bench/bench_synth_realism.py [REAL_FOLDER] [--cases 12] [--shape 120 120 78] [--styles ...]

Per style: `--cases` cases drawn with synth.synthesize_case (the same seed for every style, so the
same brains), then, measured exactly as on the real cases: the brain = voxels of clearly non-zero
magnitude in any sequence (not "non-zero": near-zero residue backgrounds would
swallow the volume; see `measured_brain`), the tumour = the ground-truth mask, and per case the median (and the 90th
percentile) over tumour voxels of the robust z (x - brain median) / (brain IQR / 1.349) on FLAIR and
T2. Printed: median, p10 and p90 over cases; the tumour's share of the brain; dtypes; background
kinds; generation time. `realised` is the generator's own measurement with its true brain mask.

Brain shape (with REAL_FOLDER): `--shape-cases` brains of style `brats` drawn at the BraTS size
(240 x 240 x 155; exactly-zero background, so the brain is "non-zero in any sequence", as on the
real files), and the Dice of each with each real case on that grid; the real cases' Dice among
themselves is printed as the reference. Intensities: deciles of the robust z (brain median, IQR /
1.349) of each sequence over the brain outside the tumour, synthetic (per style, pooled over cases)
next to real (pooled over the real cases).

REAL_FOLDER (e.g. ../shared/real) holds Radiology/<ID>/<ID>_{flair,t1,t1ce,t2}.nii[.gz] and
Segmentation/<ID>_seg*.nii[.gz] (BraTS labels, or a float mask read as > 0.5) for some cases; cases
without a mask report only their dtype and background.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from radpath.synth.cohort import plan_cohort, synthesize_case, write_case
from radpath.synth.style import STYLES

SEQS = ("flair", "t1", "t1ce", "t2")


def measured_brain(vols: dict[str, np.ndarray]) -> np.ndarray:
    """Voxels whose magnitude exceeds 10 % of the typical brain magnitude in any sequence (the
    median magnitude of the voxels above 1e-3 of the 99th percentile): drops near-zero residue and
    most of the resampling ringing, keeps the brain of z-scored files (the four sequences are
    rarely all near 0 at once)."""
    brain = np.zeros(next(iter(vols.values())).shape, dtype=bool)
    for v in vols.values():
        a = np.abs(v.astype(np.float32))
        if not (a > 0).any():
            continue
        typical = np.median(a[a > 1e-3 * np.percentile(a[a > 0], 99)])
        brain |= a > 0.1 * typical
    return brain


def tumour_z(v: np.ndarray, brain: np.ndarray, tumour: np.ndarray) -> tuple[float, float]:
    b = v[brain].astype(np.float64)
    q25, med, q75 = np.percentile(b, [25, 50, 75])
    z = (v[tumour].astype(np.float64) - med) / max((q75 - q25) / 1.349, 1e-12)
    return float(np.median(z)), float(np.percentile(z, 90))


def background_kind(vols: dict[str, np.ndarray], brain: np.ndarray) -> str:
    v = vols["flair"]
    outside = v[~brain]
    b = v[brain].astype(np.float64)
    if (outside == 0).mean() > 0.99:
        if np.median(b) < 0.25 * np.percentile(np.abs(b), 90) and (b < 0).mean() > 0.1:
            return "zscored"
        return "zero"
    return "residue"


def describe(vols: dict[str, np.ndarray], seg: np.ndarray | None) -> dict:
    brain = measured_brain(vols)
    row = {
        "dtype": str(vols["flair"].dtype),
        "background": background_kind(vols, brain),
        "nonzero_fraction": float((vols["flair"] != 0).mean()),
        "brain_fraction": float(brain.mean()),
    }
    if seg is not None and seg.any():
        tumour = seg & brain
        row["flair_z"], row["flair_p90"] = tumour_z(vols["flair"], brain, tumour)
        row["t2_z"], row["t2_p90"] = tumour_z(vols["t2"], brain, tumour)
        row["tumour_fraction"] = float(tumour.sum() / brain.sum())
    return row


def deciles(vols: dict[str, np.ndarray], brain: np.ndarray, tumour: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per sequence, the 10th..90th percentiles of the robust z over the brain outside the tumour."""
    normal = brain & ~tumour if tumour is not None else brain
    out = {}
    for s in SEQS:
        b = vols[s][brain].astype(np.float64)
        q25, med, q75 = np.percentile(b, [25, 50, 75])
        z = (vols[s][normal].astype(np.float64) - med) / max((q75 - q25) / 1.349, 1e-12)
        out[s] = np.percentile(z, np.arange(10, 100, 10))
    return out


def print_deciles(name: str, rows: list[dict[str, np.ndarray]]) -> None:
    for s in SEQS:
        d = np.median(np.stack([r[s] for r in rows]), axis=0)
        print(f"  {name:>10} {s:>5} robust z deciles 10..90: " + " ".join(f"{x:5.2f}" for x in d))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def brain_shape(real_masks: dict[str, np.ndarray], cases: int, seed: int) -> None:
    """Brain-mask Dice of full-size synthetic brains (style brats) with the real cases on the BraTS grid."""
    if not real_masks:
        print("\n== brain shape: no real case on the 240 x 240 x 155 grid")
        return
    names = sorted(real_masks)
    real_real = [dice(real_masks[a], real_masks[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    scores, seconds = [], []
    for p in plan_cohort(cases, seed):
        t0 = time.process_time()  # CPU seconds: "per case per core" whatever else runs on the machine
        vols, _, _ = synthesize_case(p, seed, (240, 240, 155), style="brats")
        seconds.append(time.process_time() - t0)
        brain = np.zeros((240, 240, 155), dtype=bool)
        for v in vols.values():
            brain |= v != 0
        scores.append([dice(brain, real_masks[n]) for n in names])
    d = np.array(scores)
    print(f"\n== brain shape: {cases} synthetic brains (style brats, 240 x 240 x 155) vs {len(names)} real brains")
    for j, n in enumerate(names):
        print(f"  vs {n}: Dice mean {d[:, j].mean():.3f} [min {d[:, j].min():.3f}, max {d[:, j].max():.3f}]")
    print(
        f"  all pairs: mean Dice {d.mean():.3f} (target >= 0.85); per synthetic brain mean over real: "
        f"{dist(list(d.mean(axis=1)))}; synthesis {np.mean(seconds):.2f} CPU s per full-size case"
    )
    if real_real:
        print(f"  real vs real: Dice {', '.join(f'{x:.3f}' for x in real_real)}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Segmentation").mkdir()
        cpu = []
        for p in plan_cohort(3, seed + 1):
            t0 = time.process_time()
            write_case(Path(tmp), p, seed + 1, (240, 240, 155), style="broad")
            cpu.append(time.process_time() - t0)
    print(f"  write_case (synthesis + 5 gzipped NIfTI files), style broad: {np.mean(cpu):.2f} CPU s per full-size case")


def dist(values: list[float]) -> str:
    v = np.array([x for x in values if np.isfinite(x)])
    if v.size == 0:
        return "n/a"
    return f"{np.median(v):5.2f} [{np.percentile(v, 10):5.2f}, {np.percentile(v, 90):5.2f}]"


def report(name: str, rows: list[dict], extra: str = "") -> None:
    t = [r for r in rows if "flair_z" in r]
    print(f"\n== {name}: {len(rows)} cases ({len(t)} with a tumour mask){extra}")
    if t:
        print(f"  FLAIR tumour z, per-case median   {dist([r['flair_z'] for r in t])}   (median [p10, p90] over cases)")
        print(f"  FLAIR tumour z, per-case p90      {dist([r['flair_p90'] for r in t])}")
        print(f"  T2 tumour z, per-case median      {dist([r['t2_z'] for r in t])}")
        print(f"  T2 tumour z, per-case p90         {dist([r['t2_p90'] for r in t])}")
        print(f"  tumour / brain                    {dist([r['tumour_fraction'] for r in t])}")
        if "realised" in t[0]:
            gap = [abs(r["realised"] - r["target"]) for r in t if r.get("tumour_fraction", 0) < 0.15]
            print(f"  generator: |realised - drawn| FLAIR z  max {max(gap):.3f} (cases with tumour < 15 % of brain)")
    if "signs" in rows[0]:
        rates = []
        for cls in "AOG":
            own = [r["signs"] for r in rows if r["appearance"] == cls]
            if own:
                rates.append(
                    f"{cls} (n={len(own)}): "
                    + ", ".join(
                        f"{k} {np.mean([x.get(k, False) for x in own]):.2f}"
                        for k in ("enhancing", "mismatch", "calcified", "frontal", "midline")
                    )
                )
        print("  signs  " + "\n         ".join(rates))
        print(
            f"  lesion ml                         {dist([r['lesion_ml'] for r in rows])}; "
            f"white-matter hyperintensities ml {dist([r['wmh_ml'] for r in rows])}"
        )
    print(
        f"  dtype {dict(Counter(r['dtype'] for r in rows))}; background {dict(Counter(r['background'] for r in rows))}"
    )
    print(f"  non-zero voxels / volume          {dist([r['nonzero_fraction'] for r in rows])}")


def real_cases(root: Path) -> list[tuple[str, dict]]:
    """(ID, description) per real case; the description holds `mask` (the non-zero brain, for cases on
    the BraTS grid) and `deciles`."""
    out = []
    for case in sorted(p for p in (root / "Radiology").iterdir() if p.is_dir()):
        vols, images = {}, {}
        for s in SEQS:
            f = next(
                (
                    case / f"{case.name}_{s}{ext}"
                    for ext in (".nii.gz", ".nii")
                    if (case / f"{case.name}_{s}{ext}").exists()
                ),
                None,
            )
            if f is None:
                break
            images[s] = nib.load(str(f))
            vols[s] = np.asanyarray(images[s].dataobj)
        if len(vols) < 4:
            print(f"skipping {case.name}: not all four sequences")
            continue
        masks = (
            sorted((root / "Segmentation").glob(f"{case.name}_seg*.nii*")) if (root / "Segmentation").is_dir() else []
        )
        seg = np.asanyarray(nib.load(str(masks[0])).dataobj) > 0.5 if masks else None
        row = describe(vols, seg)
        # the brain on the generator's RAS voxel order (the files are stored LPS, as real releases are)
        nonzero = np.zeros(vols["flair"].shape, dtype=bool)
        for s in SEQS:
            nonzero |= np.asanyarray(nib.as_closest_canonical(images[s]).dataobj) != 0
        if nonzero.shape == (240, 240, 155):
            row["mask"] = nonzero
        row["deciles"] = deciles(vols, measured_brain(vols), seg)
        out.append((case.name, row))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("real", nargs="?", type=Path, help="folder of real cases (Radiology/, Segmentation/)")
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--shape", type=int, nargs=3, default=[120, 120, 78])
    ap.add_argument("--styles", nargs="+", default=list(STYLES))
    ap.add_argument("--shape-cases", type=int, default=12, help="full-size brains for the brain-shape Dice")
    args = ap.parse_args()
    shape = tuple(args.shape)
    plans = plan_cohort(args.cases, args.seed)
    for name in args.styles:
        rows, seconds = [], []
        for p in plans:
            t0 = time.perf_counter()
            vols, seg, info = synthesize_case(p, args.seed, shape, style=name)
            seconds.append(time.perf_counter() - t0)
            row = describe(vols, seg > 0)
            row["realised"], row["target"] = info["flair_z"], info["flair_z_target"]
            row["appearance"], row["lesion_ml"], row["wmh_ml"] = p.appearance, info["lesion_ml"], info["wmh_ml"]
            row["signs"] = {k: info.get(k, False) for k in ("enhancing", "mismatch", "calcified", "frontal", "midline")}
            row["deciles"] = deciles(vols, measured_brain(vols), seg > 0)
            rows.append(row)
        report(f"style {name}", rows, f"; shape {shape}; {np.mean(seconds):.2f} s per case (synthesis only)")
        print_deciles(name, [r["deciles"] for r in rows])
    if args.real:
        rows = real_cases(args.real)
        for case_id, r in rows:
            z = (
                (
                    f"FLAIR z median {r['flair_z']:.2f} p90 {r['flair_p90']:.2f}, T2 z median {r['t2_z']:.2f} "
                    f"p90 {r['t2_p90']:.2f}, tumour/brain {r['tumour_fraction']:.3f}"
                )
                if "flair_z" in r
                else "no mask"
            )
            print(
                f"real {case_id}: {r['dtype']}, background {r['background']}, non-zero "
                f"{r['nonzero_fraction']:.2f} of the volume, measured brain {r['brain_fraction']:.2f}; {z}"
            )
        report(f"real cases in {args.real}", [r for _, r in rows])
        print_deciles("real", [r["deciles"] for _, r in rows])
        brain_shape({n: r["mask"] for n, r in rows if "mask" in r}, args.shape_cases, args.seed)


if __name__ == "__main__":
    main()
