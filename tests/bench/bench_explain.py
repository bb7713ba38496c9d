"""Pointing-game benchmark of the explanations (issue 10): does the map look at the tumour?

    python tests/bench/bench_explain.py RUN_DIR COHORT [--cases 40]

For each case of a SYNTHETIC cohort (which has ground-truth masks in Segmentation/), computes the
integrated-gradients map of the predicted class exactly as the `explain` signature does (the same
`train.explain` function, in-process JAX, calibrated temperature), on the model input at the
max-tumour slice preprocessing chose, and the ground-truth tumour mapped onto the model input's
plane (`preprocess.model_input.to_model_plane`). Prints: the share of cases whose map peak falls
inside the tumour (target >= 80 %), the mean share of attribution mass inside the tumour against the
tumour's share of the brain in that plane (mass / share > 1 means the map concentrates on it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax
import nibabel as nib
import numpy as np

from radpath.client.explain import brain_view_attribution
from radpath.contract.model_io import fill_ages, round_input, view_channels
from radpath.preprocess import find_tumor, load_case, model_input
from radpath.preprocess.cohort import read_cohort
from radpath.preprocess.model_input import to_model_plane
from radpath.train.explain import explain_fn
from radpath.train.fusion import fused_apply
from radpath.train.loop import make_model
from radpath.train.run import load_calibration, load_model


def ground_truth(cohort: Path, case) -> np.ndarray:
    """The generator's tumour mask in the case's canonical (RAS) grid, as load_case orients volumes."""
    img = nib.load(str(cohort / "Segmentation" / f"{case.case_id}_seg.nii.gz"))
    canonical = nib.as_closest_canonical(img)
    return np.asarray(canonical.dataobj) > 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("cohort")
    ap.add_argument("--cases", type=int, default=40)
    args = ap.parse_args()
    variables, config = load_model(Path(args.run_dir))
    temperature = load_calibration(Path(args.run_dir))["temperature"]
    fn = jax.jit(explain_fn(fused_apply(make_model(config).apply, config), temperature))
    cohort = Path(args.cohort)
    peaks, mass, share = [], [], []
    for entry in read_cohort(cohort).labelled()[: args.cases]:
        case = load_case(entry.case_dir, entry.case_id)
        k = find_tumor(case).index
        x = round_input(model_input(case, k))[None]
        _, maps = fn(variables, x, fill_ages(None, 1))
        m = brain_view_attribution(case, np.asarray(maps[0]))  # every view's share, as the client draws it
        gt = to_model_plane(case, ground_truth(cohort, case)[:, :, k], order=0) > 0.5
        brain = (x[0][..., view_channels("brain")] != 0).any(-1)
        if not gt.any():
            continue
        peaks.append(bool(gt[np.unravel_index(int(m.argmax()), m.shape)]))
        mass.append(float(m[gt].sum() / max(m.sum(), 1e-12)))
        share.append(float(gt.sum() / max(brain.sum(), 1)))
    n = len(peaks)
    print(
        f"SYNTHETIC cohort {cohort} ({n} cases with tumour on the chosen slice), run {args.run_dir}, "
        f"T = {temperature:.3f}"
    )
    print(
        f"map peak inside the tumour: {sum(peaks)}/{n} = {np.mean(peaks):.2f} (target >= 0.80: "
        f"{'met' if np.mean(peaks) >= 0.8 else 'MISSED'})"
    )
    print(
        f"attribution mass inside the tumour: mean {np.mean(mass):.2f}; tumour's share of the brain in that plane: "
        f"mean {np.mean(share):.2f}; ratio {np.mean(mass) / max(np.mean(share), 1e-12):.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
