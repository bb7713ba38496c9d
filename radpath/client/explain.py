"""`radpath classify --explain OUT.png`: where the model looked, computed by the model server.

The `explain` signature (integrated gradients of the predicted class, see `train.explain`) runs on
the server; this module asks it for the centre slice of the case, maps the detected tumour onto each
view of the model input with the same crop and zoom as the input itself (`preprocess.model_input`),
draws both (`client.picture`), and says whether the map's peak falls inside the tumour outline.

The brain view's picture carries all the attribution: its own map plus the tumour view's map drawn
where that view lies in it (`view_to_brain_view`), weighted by the area a tumour-view pixel covers
(its pixels are smaller), so the two views' shares add up as the model used them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radpath.contract.model_io import VIEWS, round_input, view_channels
from radpath.preprocess import find_tumor, model_input, tumor_stats
from radpath.preprocess.case import Case
from radpath.preprocess.model_input import to_model_plane, view_square, view_to_brain_view
from radpath.preprocess.tumor_slice import tumor_mask

from .picture import explanation_figure, png_bytes


def brain_view_attribution(case: Case, maps: np.ndarray) -> np.ndarray:
    """float32 [H, W] in [0, 1]: every view's attribution map ([H, W, len(VIEWS)], as served) in the
    brain view's plane: the brain view's own plus each other view's drawn where it lies, times the
    area of a brain-view pixel over one of that view's (a zoomed view's pixels are smaller)."""
    brain_side = view_square(case, "brain")[2]
    combined = np.asarray(maps[..., VIEWS.index("brain")], np.float32).copy()
    for v, view in enumerate(VIEWS):
        if view != "brain":
            area = (brain_side / view_square(case, view)[2]) ** 2
            combined += area * view_to_brain_view(case, maps[..., v], view)
    return combined / max(float(combined.max()), 1e-12)


def explain_case(client, case: Case) -> dict:
    """{image [H, W, C], attribution [H, W, len(VIEWS)] (the brain view's column holding every view's
    share), tumour [H, W, len(VIEWS)] bool, probabilities, peak_in_tumour, tumor_stats_used (the model also
    read the tumour's 3-D statistics, which the map does not show)}."""
    tumor = find_tumor(case)
    x = round_input(model_input(case, tumor.index))[None]
    ages = None if case.age_days is None else np.full(1, case.age_days)
    stats_used = client.wants_tumor_stats()
    probs, maps = client.explain(x, ages, tumor_stats(case, tumor) if stats_used else None)
    plane = tumor_mask(case)[:, :, tumor.index]
    mask = np.stack([to_model_plane(case, plane, order=0, view=v) for v in VIEWS], axis=-1).astype(bool)
    attribution = np.asarray(maps[0], np.float32).copy()
    attribution[..., VIEWS.index("brain")] = brain_view_attribution(case, maps[0])
    brain = attribution[..., VIEWS.index("brain")]
    in_brain = mask[..., VIEWS.index("brain")]
    peak = np.unravel_index(int(np.argmax(brain)), brain.shape)
    return {
        "image": x[0],
        "attribution": attribution,
        "tumour": mask,
        "probabilities": probs[0],
        "peak_in_tumour": bool(in_brain[peak]) if tumor.found else None,
        "tumor_stats_used": stats_used,
    }


def write_explanation(client, case: Case, out: str | Path) -> dict:
    """Write the explanation figure of `case` to `out` (PNG); returns what the CLI reports."""
    e = explain_case(client, case)
    out = Path(out)
    out.write_bytes(png_bytes(explanation_figure(e["image"], e["attribution"], e["tumour"])))
    b = VIEWS.index("brain")
    brain, tumour = e["attribution"][..., b], e["tumour"][..., b]
    return {
        "path": str(out),
        "peak_in_tumour": e["peak_in_tumour"],
        "tumor_stats_used": e["tumor_stats_used"],
        "attribution_in_tumour": float(brain[tumour].sum() / max(brain.sum(), 1e-12)),
        "tumour_share_of_brain": float(
            tumour.sum() / max((e["image"][..., view_channels("brain")] != 0).any(-1).sum(), 1)
        ),
    }
