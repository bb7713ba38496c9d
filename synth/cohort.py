"""Write a synthetic cohort in the exact CPM-RadPath training layout.

    OUT/training_data_classification_labels.csv   CPM_RadPath_2019_ID,class,age_in_days
    OUT/Radiology/<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz
    OUT/Segmentation/<ID>_seg.nii.gz                BraTS labels (ground truth, NOT part of a release)
    OUT/SYNTHETIC.md                                 what this is, seed, generator version

Synthetic data for the demo and the tests: it must never be described as real data, and accuracy
on it is not clinical accuracy. Scanner effects that the real files have are reproduced: int16,
arbitrary per-scan scale (20x range), bias field, noise, bright outliers far above the 99.5th
percentile, a few slightly negative brain voxels, brain masks that differ by a few hundred voxels
between sequences, `qform_code` 1 or 2, BraTS-like LPS storage. Deterministic per seed: case k's
random stream depends only on (seed, k), so the worker count does not change a byte of data.
"""
from __future__ import annotations

import csv
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .anatomy import make_brain
from .fields import smooth_field
from .tumors import SEQ_ORDER, Tumor, make_tumor

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
REAL_COUNTS = {"G": 133, "A": 54, "O": 34}
"""Class counts of the real CPM-RadPath 2019 training release (221 cases)."""
AGE_YEARS = {"A": (39.0, 11.0), "O": (54.5, 12.0), "G": (60.0, 12.0)}
"""Median and spread of age per class (real medians: A 39, O 54.5, G 60 years)."""
LOOKALIKE_RATE = 0.05
"""Fraction of cases drawn with another class's appearance, so the task is not trivially separable."""
SITES = {"G": ["TCIA01", "TCIA02", "TCIA06", "CBICA"], "A": ["TCIA10", "TCIA12", "CBICA"],
         "O": ["TCIA10", "TCIA13", "CBICA"]}
"""ID prefixes by class, mimicking the real release's site/class leak (never a feature)."""

# relative tissue intensity per sequence (flair, t1, t1ce, t2); index = tissue label
TISSUE = np.array([[0.0, 0.0, 0.0, 0.0],      # background
                   [0.13, 0.30, 0.32, 1.30],  # CSF
                   [0.58, 0.75, 0.78, 0.62],  # GM
                   [0.50, 1.00, 1.00, 0.45]], dtype=np.float32)  # WM
LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class PlannedCase:
    index: int
    case_id: str
    label: str
    appearance: str
    age_days: int


def plan_cohort(cases: int, seed: int, counts: dict[str, int] | None = None) -> list[PlannedCase]:
    """IDs, classes, appearances and ages for `cases` cases (real class proportions by default)."""
    if cases < 1:
        raise ValueError("--cases must be at least 1")
    rng = np.random.default_rng([seed, 0xC0401])
    if counts is None:
        total = sum(REAL_COUNTS.values())
        counts = {k: int(round(v * cases / total)) for k, v in REAL_COUNTS.items()}
        counts["G"] += cases - sum(counts.values())
        for k in ("A", "O"):  # every class present when there is room
            if counts[k] == 0 and cases >= 3:
                counts[k] += 1
                counts["G"] -= 1
    labels = [k for k, n in counts.items() for _ in range(n)]
    rng.shuffle(labels)
    planned, used = [], set()
    for i, label in enumerate(labels):
        appearance = label
        if rng.random() < LOOKALIKE_RATE:
            appearance = str(rng.choice([c for c in "AOG" if c != label]))
        mu, sd = AGE_YEARS[label]
        age = float(np.clip(rng.normal(mu, sd), 18, 88))
        while True:
            site = str(rng.choice(SITES[label]))
            code = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 3)) if site == "CBICA" else f"{rng.integers(100, 999)}"
            case_id = f"CPM19_{site}_{code}_1"
            if case_id not in used:
                used.add(case_id)
                break
        planned.append(PlannedCase(i, case_id, label, appearance, int(age * 365.25 + rng.integers(0, 365))))
    return planned


def synthesize_case(plan: PlannedCase, seed: int, shape: tuple[int, int, int],
                    with_tumor: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """The four int16 volumes and the uint8 BraTS label map, all [x, y, z] in RAS, plus signs.

    `with_tumor=False` gives the same brain without a lesion (tests of the no-tumour behaviour).
    """
    rng = np.random.default_rng([seed, plan.index])
    brain = make_brain(rng, shape, plan.age_days / 365.25)
    tumor = make_tumor(rng, brain, plan.appearance)
    if not with_tumor:
        tumor = Tumor(tumor.box, np.zeros_like(tumor.seg), tumor.values, {})
    seg = np.zeros(shape, dtype=np.uint8)
    seg[tumor.box] = tumor.seg
    inside = brain.tissue > 0
    contrast = TISSUE * rng.uniform(0.95, 1.05, TISSUE.shape).astype(np.float32)  # other scanner
    edge = inside & ~ndimage.binary_erosion(inside, iterations=2)
    edge_idx = np.flatnonzero(edge)
    bias = np.exp(0.06 * smooth_field(rng, shape, (4, 4, 3)))
    volumes = {}
    for s, name in enumerate(SEQ_ORDER):
        img = contrast[brain.tissue, s]
        sub = img[tumor.box]
        sub[tumor.seg > 0] = tumor.values[name][tumor.seg > 0] * rng.uniform(0.95, 1.05)
        img *= bias
        img += rng.normal(0.0, rng.uniform(0.015, 0.04), shape).astype(np.float32)
        scale = 10 ** rng.uniform(np.log10(300), np.log10(6000))  # arbitrary scanner scale, 20x range
        img *= scale
        brain_vals = img[inside]
        p995 = np.percentile(brain_vals[:: max(1, brain_vals.size // 200000)], 99.5)
        flat = img.reshape(-1)
        # bright outliers and a few slightly negative voxels, as in bias-corrected BraTS files
        flat[rng.choice(np.flatnonzero(inside), 30)] = p995 * rng.uniform(2, 5, 30)
        neg = rng.choice(np.flatnonzero(inside), max(1, int(inside.sum()) // 3000))
        flat[neg] = -rng.uniform(1, 0.02 * scale, neg.size)
        img[~inside] = 0
        data = np.rint(img).astype(np.int16)
        data[inside & (data == 0)] = 1  # the brain is non-zero
        data.reshape(-1)[rng.choice(edge_idx, min(edge_idx.size, 300))] = 0  # masks differ a little
        volumes[name] = data
    return volumes, seg, tumor.signs


def save_ras(data: np.ndarray, path: Path, qform_code: int = 1) -> None:
    """Save a RAS [x, y, z] array in BraTS-like LPS storage (flipped x and y, negative affine diagonal)."""
    stored = data[::-1, ::-1, :]
    affine = LPS_AFFINE.copy()
    affine[:3, 3] = [data.shape[0] - 1, data.shape[1] - 1, 0.0]
    img = nib.Nifti1Image(np.ascontiguousarray(stored), affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


def write_case(out: Path, plan: PlannedCase, seed: int, shape: tuple[int, int, int]) -> dict:
    volumes, seg, signs = synthesize_case(plan, seed, shape)
    case_dir = out / "Radiology" / plan.case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(SEQ_ORDER):
        save_ras(volumes[name], case_dir / f"{plan.case_id}_{name}.nii.gz", qform_code=1 + (plan.index + k) % 2)
    save_ras(seg, out / "Segmentation" / f"{plan.case_id}_seg.nii.gz", qform_code=1)
    return {"case_id": plan.case_id, "class": plan.label, "appearance": plan.appearance, **signs}


def _write_case_star(args: tuple) -> dict:
    return write_case(*args)


def write_synthetic_cohort(out: str | Path, cases: int = 221, seed: int = 0,
                           shape: tuple[int, int, int] = (240, 240, 155), workers: int = 1,
                           progress: bool = True) -> list[PlannedCase]:
    """Generate `cases` cases into `out` (see module docstring). Returns the plan (IDs, labels)."""
    out = Path(out)
    if any(s < 16 for s in shape):
        raise ValueError(f"--shape {shape}: each axis needs at least 16 voxels")
    plans = plan_cohort(cases, seed)
    (out / "Segmentation").mkdir(parents=True, exist_ok=True)
    (out / "Radiology").mkdir(parents=True, exist_ok=True)
    jobs = [(out, p, seed, tuple(shape)) for p in plans]
    bar = tqdm(total=len(jobs), desc="synth", unit="case", disable=not progress)
    signs = []
    if workers > 1:
        # spawn, not fork: forking a process that already runs JAX or TensorFlow threads can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for info in pool.map(_write_case_star, jobs):
                signs.append(info)
                bar.update()
    else:
        for job in jobs:
            signs.append(_write_case_star(job))
            bar.update()
    bar.close()
    with open(out / "training_data_classification_labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CPM_RadPath_2019_ID", "class", "age_in_days"])
        for p in plans:
            w.writerow([p.case_id, p.label, p.age_days])
    with open(out / "Segmentation" / "appearance.csv", "w", newline="") as f:
        keys = sorted({k for s in signs for k in s})
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(signs)
    counts = {c: sum(p.label == c for p in plans) for c in "AOG"}
    (out / "SYNTHETIC.md").write_text(
        "# Synthetic cohort: NOT patient data\n\n"
        f"Generated by `radpath synth` (generator version {GENERATOR_VERSION}), seed {seed}, "
        f"{cases} cases of shape {tuple(shape)}; classes A {counts['A']}, O {counts['O']}, G {counts['G']}.\n"
        "Layout of the CPM-RadPath training release. Anatomy and tumours are simulated; a model trained "
        "or scored on this data says nothing about clinical accuracy.\n"
        "`Segmentation/` holds the generator's ground-truth tumour masks (BraTS labels 1, 2, 4) and "
        "`appearance.csv` the simulated signs per case; neither is part of a real release.\n")
    return plans
