"""Write a synthetic cohort in the exact CPM-RadPath training layout.

    OUT/training_data_classification_labels.csv   CPM_RadPath_2019_ID,class,age_in_days
    OUT/Radiology/<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz
    OUT/Segmentation/<ID>_seg.nii.gz                BraTS labels (ground truth, NOT part of a release)
    OUT/Segmentation/appearance.csv                 drawn and realised appearance per case
    OUT/SYNTHETIC.md                                 what this is, style, seed, generator version

Synthetic data for the demo and the tests: it must never be described as real data, and accuracy
on it is not clinical accuracy. Each case's look is drawn from a named `Style` (synth/style.py):
tumour conspicuity, contrasts, noise, bias, blur, signs, and the file quirks real files have (int16
or float32, arbitrary per-scan scale over 20x, bright outliers far above the 99.5th percentile,
slightly negative brain voxels, exactly-zero or near-zero resampling residue background, z-scored
files, brain masks that differ by a few hundred voxels between sequences), `qform_code` 1 or 2,
BraTS-like LPS storage. Tumour-free control brains (no class) on request. Deterministic per seed:
case k's random streams depend only on (seed, k), so the worker count does not change a byte.
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
from tqdm import tqdm

from .anatomy import anatomy_attribution, make_brain
from .render import SEQ_ORDER, draw_appearance, render, robust_z_median, to_full, write_quirks
from .style import Style, SynthSettingsError, get_style
from .tumors import make_tumor, plan_lesion

log = logging.getLogger(__name__)

GENERATOR_VERSION = "3"
"""3: anatomy from the ICBM 2009a template on the BraTS grid (synth/anatomy.py), deformed per case, atrophy
with age; lesions centred in white matter with mass effect, oedema along white matter.
2: per-case domain randomisation from named styles (synth/style.py), realised FLAIR/T2 conspicuity,
file quirks, white-matter hyperintensities (not tumour), tumour-free controls.
1: one fixed look (now approximated by style `legacy`)."""
REAL_COUNTS = {"G": 133, "A": 54, "O": 34}
"""Class counts of the real CPM-RadPath 2019 training release (221 cases)."""
AGE_YEARS = {"A": (39.0, 11.0), "O": (54.5, 12.0), "G": (60.0, 12.0)}
"""Median and spread of age per class (real medians: A 39, O 54.5, G 60 years)."""
LOOKALIKE_RATE = 0.05
"""Fraction of cases drawn with another class's appearance, so the task is not trivially separable."""
SITES = {
    "G": ["TCIA01", "TCIA02", "TCIA06", "CBICA"],
    "A": ["TCIA10", "TCIA12", "CBICA"],
    "O": ["TCIA10", "TCIA13", "CBICA"],
}
"""ID prefixes by class, mimicking the real release's site/class leak (never a feature)."""
MIN_AXIS = 16
LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class PlannedCase:
    index: int
    case_id: str
    label: str | None
    """class A/O/G; None for a tumour-free control (which has no class)"""
    appearance: str
    """the class whose look the lesion has ('none' for a control)"""
    age_days: int
    control: bool = False


def _case_id(rng: np.random.Generator, site: str, used: set[str]) -> str:
    while True:
        code = (
            "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 3))
            if site == "CBICA"
            else f"{rng.integers(100, 999)}"
        )
        case_id = f"CPM19_{site}_{code}_1"
        if case_id not in used:
            used.add(case_id)
            return case_id


def plan_cohort(cases: int, seed: int, counts: dict[str, int] | None = None, controls: int = 0) -> list[PlannedCase]:
    """IDs, classes, appearances and ages for `cases` tumour cases (real class proportions by
    default), then `controls` tumour-free control brains (no class). Adding controls does not
    change the tumour cases."""
    if cases < 1:
        raise SynthSettingsError(f"--cases {cases}: need at least 1 case")
    if controls < 0:
        raise SynthSettingsError(f"--controls {controls}: cannot be negative")
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
        case_id = _case_id(rng, str(rng.choice(SITES[label])), used)
        planned.append(PlannedCase(i, case_id, label, appearance, int(age * 365.25 + rng.integers(0, 365))))
    for j in range(controls):
        age = float(rng.uniform(20, 85))
        case_id = _case_id(rng, "CBICA", used)
        planned.append(
            PlannedCase(len(labels) + j, case_id, None, "none", int(age * 365.25 + rng.integers(0, 365)), control=True)
        )
    return planned


def check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The shape as a tuple of three ints, or SynthSettingsError (the CLI checks before writing)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < MIN_AXIS for s in shape):
        raise SynthSettingsError(
            f"--shape {' '.join(map(str, shape))}: need three axes of at least {MIN_AXIS} voxels (BraTS: 240 240 155)"
        )
    x, y, z = shape
    return x, y, z


def synthesize_case(
    plan: PlannedCase, seed: int, shape: tuple[int, int, int], with_tumor: bool = True, style: Style | str = "broad"
) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """The four volumes and the uint8 BraTS label map, all [x, y, z] in RAS, and what was drawn.

    Volumes are int16 or float32 as the case's drawn file quirks say. `with_tumor=False` (or a
    control plan) gives the same brain and the same appearance without a lesion. Independent random
    streams for anatomy, lesion, appearance and rendering: the same (seed, index) gives the same brain
    in every style, and pinning one range (e.g. `flair_z`) changes nothing else.
    `info` holds the realised values: style, flair_z and t2_z (measured on the returned volumes with
    the true brain and lesion masks; NaN without a lesion), their targets, dtype, background, contrast
    family, lesion_ml (at 1 mm, full-size equivalent), tumour_fraction of the brain, and the signs.
    """
    style = get_style(style)
    shape = check_shape(shape)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, plan.index]).spawn(5)]
    r_anat, r_tumor, r_look, r_render, r_file = streams
    lesion_plan = plan_lesion(r_tumor, plan.appearance, style) if with_tumor and not plan.control else None
    push = lesion_plan.push if lesion_plan is not None else None
    brain = make_brain(r_anat, shape, plan.age_days / 365.25, push=push)
    tumor = make_tumor(r_tumor, brain, lesion_plan) if lesion_plan is not None else None
    look = draw_appearance(r_look, style)
    crops = write_quirks(r_file, render(r_render, brain, tumor, look), brain, look)
    seg = np.zeros(shape, dtype=np.uint8)
    lesion = np.zeros(brain.tissue.shape, dtype=bool)
    if tumor is not None:
        seg[brain.box][tumor.box] = tumor.seg
        lesion[tumor.box] = tumor.seg > 0
    inside = brain.tissue > 0
    volumes = {name: to_full(r_file, crops[name], brain, look) for name in SEQ_ORDER}
    mm3 = (240.0 / shape[0]) * (240.0 / shape[1]) * (155.0 / shape[2])
    info = {
        "style": style.name,
        "flair_z": round(robust_z_median(crops["flair"], inside, lesion), 3),
        "t2_z": round(robust_z_median(crops["t2"], inside, lesion), 3),
        "flair_z_target": round(look["flair_z"], 3) if tumor is not None else float("nan"),
        "t2_z_target": round(look["t2_z"], 3) if tumor is not None else float("nan"),
        "lesion_ml": round(float(lesion.sum()) * mm3 / 1000.0, 2),
        "tumor_fraction": round(float(lesion.sum()) / max(int(inside.sum()), 1), 4),
        "dtype": look["dtype"],
        "background": look["background"],
        "contrast_family": look["family"],
        "wmh_ml": round(look["wmh_voxels"] * mm3 / 1000.0, 2),
        "noise": round(look["noise"], 4),
        "bias": round(look["bias"], 3),
        "blur_mm": round(look["blur_mm"], 2),
        "slice_mm": "/".join(f"{x:.1f}" for x in look["slice_mm"]),
        **({k: bool(v) for k, v in tumor.signs.items()} if tumor is not None else {}),
    }
    return volumes, seg, info


def save_ras(data: np.ndarray, path: Path, qform_code: int = 1) -> None:
    """Save a RAS [x, y, z] array in BraTS-like LPS storage (flipped x and y, negative affine diagonal)."""
    stored = np.asfortranarray(data[::-1, ::-1, :])  # NIfTI's own order: nibabel writes it without a transpose
    affine = LPS_AFFINE.copy()
    affine[:3, 3] = [data.shape[0] - 1, data.shape[1] - 1, 0.0]
    img = nib.Nifti1Image(stored, affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


APPEARANCE_COLUMNS = (
    "case_id",
    "class",
    "appearance",
    "control",
    "style",
    "flair_z",
    "t2_z",
    "flair_z_target",
    "t2_z_target",
    "lesion_ml",
    "tumor_fraction",
    "enhancing",
    "mismatch",
    "calcified",
    "frontal",
    "midline",
    "dtype",
    "background",
    "contrast_family",
    "wmh_ml",
    "noise",
    "bias",
    "blur_mm",
    "slice_mm",
)
"""Columns of Segmentation/appearance.csv (one row per case, controls included; empty = not applicable)."""


def write_case(
    out: Path, plan: PlannedCase, seed: int, shape: tuple[int, int, int], style: Style | str = "broad"
) -> dict:
    volumes, seg, info = synthesize_case(plan, seed, shape, style=style)
    case_dir = out / "Radiology" / plan.case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(SEQ_ORDER):
        save_ras(volumes[name], case_dir / f"{plan.case_id}_{name}.nii.gz", qform_code=1 + (plan.index + k) % 2)
    save_ras(seg, out / "Segmentation" / f"{plan.case_id}_seg.nii.gz", qform_code=1)
    row = {
        "case_id": plan.case_id,
        "class": plan.label or "",
        "appearance": plan.appearance,
        "control": int(plan.control),
        **info,
    }
    return {
        k: ("" if isinstance(v, float) and not np.isfinite(v) else int(v) if isinstance(v, bool) else v)
        for k, v in row.items()
    }


def _write_case_star(args: tuple) -> dict:
    return write_case(*args)


def write_synthetic_cohort(
    out: str | Path,
    cases: int = 221,
    seed: int = 0,
    shape: tuple[int, int, int] = (240, 240, 155),
    workers: int = 1,
    progress: bool = True,
    style: Style | str = "broad",
    controls: int = 0,
) -> list[PlannedCase]:
    """Generate `cases` tumour cases and `controls` tumour-free brains into `out` (see the module
    docstring), each drawn from `style`'s ranges. Returns the plan (IDs, labels; controls last,
    with `label=None`). Controls are left out of the labels CSV: a cohort reader sees a case folder
    without a class, which training skips and reports."""
    out = Path(out)
    shape = check_shape(shape)
    style = get_style(style)
    if workers < 1:
        raise SynthSettingsError(f"--workers {workers}: need at least 1")
    plans = plan_cohort(cases, seed, controls=controls)
    (out / "Segmentation").mkdir(parents=True, exist_ok=True)
    (out / "Radiology").mkdir(parents=True, exist_ok=True)
    jobs = [(out, p, seed, shape, style) for p in plans]
    bar = tqdm(total=len(jobs), desc="synth", unit="case", disable=not progress)
    rows = []
    if workers > 1:
        # spawn, not fork: forking a process that already runs JAX or TensorFlow threads can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for info in pool.map(_write_case_star, jobs):
                rows.append(info)
                bar.update()
    else:
        for job in jobs:
            rows.append(_write_case_star(job))
            bar.update()
    bar.close()
    with open(out / "training_data_classification_labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CPM_RadPath_2019_ID", "class", "age_in_days"])
        for p in plans:
            if not p.control:
                w.writerow([p.case_id, p.label, p.age_days])
    with open(out / "Segmentation" / "appearance.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=APPEARANCE_COLUMNS, restval="", extrasaction="raise")
        w.writeheader()
        w.writerows(rows)
    counts = {c: sum(p.label == c for p in plans) for c in "AOG"}
    (out / "SYNTHETIC.md").write_text(
        "# Synthetic cohort: NOT patient data\n\n"
        f"Generated by `radpath synth` (generator version {GENERATOR_VERSION}), style `{style.name}`, seed {seed}, "
        f"{cases} tumour cases of shape {tuple(shape)}; classes A {counts['A']}, O {counts['O']}, G {counts['G']}; "
        f"{controls} tumour-free control brains (no class, not in the labels CSV).\n"
        "Layout of the CPM-RadPath training release. Anatomy, tumours and scanner effects are simulated: each "
        f"case's appearance (tumour conspicuity, tissue contrasts, noise, bias, blur, file format) is drawn from "
        f"the ranges of style `{style.name}` (synth/style.py). A model trained or scored on this data says nothing "
        "about clinical accuracy.\n"
        "`Segmentation/` holds the generator's ground-truth tumour masks (BraTS labels 1, 2, 4) and "
        "`appearance.csv` the drawn and realised appearance per case (signs, FLAIR/T2 tumour robust z, dtype, "
        "background); neither is part of a real release.\n\n" + anatomy_attribution()
    )
    return plans
