"""What the whole tumour shows in 3-D: the statistics a one-slice model cannot read.

The classifier's image input is one axial slice (and its neighbours). The signs that tell the classes
apart are spread through the volume: a glioblastoma's size and a crossing of the midline, an
oligodendroglioma's frontal site and its calcified foci (a few specks, each on a few slices), an
astrocytoma's FLAIR-dark centre. A logistic regression on these statistics inside the detected
tumour plus age (`train.baselines`, `tumour_stats_and_age`) scored 0.78 (challenge mean) on a fresh
150-case synthetic cohort after fitting on the demo's 221 cases, against 0.73 for the one-slice model
and 0.77 for the generator's own drawn signs plus age (README, issue 16). They feed that baseline in
every run, the served model's second reader (`stats_fusion`, the demo's recipe) and, with
`tumor_stats=true`, the class head, as a third input
(`contract.model_io.TUMOR_STATS`, in that order): computed here once for training and every client.

Everything is measured on the detected tumour (`find_tumor`: the FLAIR-bright lesion, oedema
included) in the robust z-scores of `normalize`, so scanner scale does not enter:
- `found`: 1 found, 0.5 only a sub-threshold candidate (its mask is used), 0 none (all else 0);
- `log10_brain_fraction`: tumour / brain voxels (floor 1e-4);
- `front`, `lateral`, `height`: the tumour's centroid from the brain's, over the brain's extent
  along that axis (front > 0 anterior; lateral the distance from the midline, either side);
- `across_midline`: share of the tumour on the far side of the brain's midline from its centroid;
- `axial_extent`: the tumour's superior-inferior extent over the brain's;
- per sequence: mean, SD and the 10th, 50th and 90th percentiles of the z-scores inside the tumour;
- `enhancing_share` / `enhancing_strong_share`: T1ce over T1 by more than 1.5 / 3 z;
- `mismatch_share`: FLAIR < 1 z while T2 > 2 z (the FLAIR-dark centre of a T2-FLAIR mismatch);
- `dark_share`: below -0.5 z on both FLAIR and T2 (calcification, blood);
- `flair_minus_t2`: median FLAIR z minus median T2 z.
"""

from __future__ import annotations

import numpy as np

from radpath.contract.model_io import TUMOR_STATS

from .brain_mask import brain_mask
from .case import SEQUENCES, Case
from .normalize import case_stats, normalize
from .tumor_slice import TumorSlice, find_tumor

TUMOR_STATS_VERSION = "1"
"""Bump when what `tumor_stats` computes changes: the training cache of the statistics is keyed by it."""
MIN_FRACTION = 1e-4
"""Floor of the tumour / brain fraction before its log (none found: exactly this)."""
ENHANCING_Z = (1.5, 3.0)
MISMATCH_Z = (1.0, 2.0)
DARK_Z = -0.5


def tumor_stats(case: Case, tumor: TumorSlice | None = None) -> np.ndarray:
    """float32 [len(TUMOR_STATS)] for `case` (its tumour found once per case unless given)."""
    tumor = find_tumor(case) if tumor is None else tumor
    out = dict.fromkeys(TUMOR_STATS, 0.0)
    out["log10_brain_fraction"] = float(np.log10(MIN_FRACTION))
    mask = tumor.box_mask
    if (not tumor.found and not tumor.possible) or mask.size == 0 or not mask.any():
        return np.array([out[k] for k in TUMOR_STATS], np.float32)
    brain = brain_mask(case)
    step = brain.step
    coarse = np.argwhere(brain.coarse) * step + (step - 1) / 2.0  # brain voxels' centres, full-resolution units
    centre, extent = coarse.mean(axis=0), np.ptp(coarse, axis=0) + step
    offset = np.array([b.start for b in tumor.box], np.float64)
    where = np.argwhere(mask) + offset
    c = where.mean(axis=0)
    side = np.sign(c[0] - centre[0])
    out["found"] = 1.0 if tumor.found else 0.5
    fraction = float(mask.sum()) / max(float(brain.coarse.sum()) * step**3, 1.0)
    out["log10_brain_fraction"] = float(np.log10(max(fraction, MIN_FRACTION)))
    out["front"] = float((c[1] - centre[1]) / extent[1])
    out["lateral"] = float(abs(c[0] - centre[0]) / extent[0])
    out["height"] = float((c[2] - centre[2]) / extent[2])
    out["across_midline"] = float(np.mean(np.sign(where[:, 0] - centre[0]) != side)) if side else 0.5
    out["axial_extent"] = float((np.ptp(where[:, 2]) + 1) / extent[2])
    stats = case_stats(case)
    inside = brain.region(case, tumor.box)
    z = {s: normalize(np.asarray(case.volumes[s][tumor.box]), stats[s], inside)[mask] for s in SEQUENCES}
    for s in SEQUENCES:
        v = z[s]
        out[f"{s}_mean"], out[f"{s}_sd"] = float(v.mean()), float(v.std())
        for q, name in zip(np.percentile(v, (10, 50, 90)), ("p10", "p50", "p90")):
            out[f"{s}_{name}"] = float(q)
    excess = z["t1ce"] - z["t1"]
    out["enhancing_share"] = float(np.mean(excess > ENHANCING_Z[0]))
    out["enhancing_strong_share"] = float(np.mean(excess > ENHANCING_Z[1]))
    out["mismatch_share"] = float(np.mean((z["flair"] < MISMATCH_Z[0]) & (z["t2"] > MISMATCH_Z[1])))
    out["dark_share"] = float(np.mean((z["flair"] < DARK_Z) & (z["t2"] < DARK_Z)))
    out["flair_minus_t2"] = float(np.median(z["flair"]) - np.median(z["t2"]))
    return np.array([out[k] for k in TUMOR_STATS], np.float32)
