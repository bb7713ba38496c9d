"""`radpath classify --explain OUT.png`: where the model looked, computed by the model server.

The `explain` signature (integrated gradients of the predicted class, see `train.explain`) runs on
the server; this module asks it for the centre view of the case, maps the detected tumour onto the
model input's plane with the same crop and zoom as the input itself (`preprocess.model_input`),
draws both (`client.picture`), and says whether the map's peak falls inside the tumour outline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radpath.contract.model_io import round_input
from radpath.preprocess import find_tumor, model_input
from radpath.preprocess.case import Case
from radpath.preprocess.model_input import to_model_plane
from radpath.preprocess.tumor_slice import tumor_mask

from .picture import explanation_figure, png_bytes


def explain_case(client, case: Case) -> dict:
    """{image [H, W, 4], attribution [H, W], tumour [H, W] bool, probabilities, peak_in_tumour}."""
    tumor = find_tumor(case)
    x = round_input(model_input(case, tumor.index))[None]
    ages = None if case.age_days is None else np.full(1, case.age_days)
    probs, maps = client.explain(x, ages)
    mask = to_model_plane(case, tumor_mask(case)[:, :, tumor.index], order=0).astype(bool)
    peak = np.unravel_index(int(np.argmax(maps[0])), maps[0].shape)
    return {
        "image": x[0],
        "attribution": maps[0],
        "tumour": mask,
        "probabilities": probs[0],
        "peak_in_tumour": bool(mask[peak]) if tumor.found else None,
    }


def write_explanation(client, case: Case, out: str | Path) -> dict:
    """Write the explanation figure of `case` to `out` (PNG); returns what the CLI reports."""
    e = explain_case(client, case)
    out = Path(out)
    out.write_bytes(png_bytes(explanation_figure(e["image"], e["attribution"], e["tumour"])))
    return {
        "path": str(out),
        "peak_in_tumour": e["peak_in_tumour"],
        "attribution_in_tumour": float(e["attribution"][e["tumour"]].sum() / max(e["attribution"].sum(), 1e-12)),
        "tumour_share_of_brain": float(e["tumour"].sum() / max((e["image"] != 0).any(-1).sum(), 1)),
    }
