"""The few preprocess features the web app needs, through one door.

`preprocess` is growing (quality warnings, a full-resolution tumour mask accessor); this module
uses them when the installed version has them and otherwise the public functions that exist today,
so the web app never holds its own copy of preprocessing logic.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

from radpath.preprocess import Case, find_tumor

log = logging.getLogger(__name__)

_MASK_ACCESSORS = (
    "preprocess:tumor_mask",
    "radpath.preprocess.tumor_slice:tumor_mask",
    "radpath.preprocess.tumor_slice:tumor_mask_full",
    "preprocess:full_tumor_mask",
)


def _optional(spec: str):
    module, name = spec.split(":")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def case_warnings(case: Case) -> list[dict]:
    """radpath.preprocess.quality's warnings for the case as plain dicts ({code, message}); [] where absent."""
    fn = _optional("radpath.preprocess.quality:case_warnings") or _optional(
        "radpath.preprocess.quality:quality_warnings"
    )
    if fn is None:
        return []
    return [w.as_dict() if hasattr(w, "as_dict") else dict(w) for w in fn(case)]


def tumor_mask(case: Case) -> np.ndarray:
    """bool [x, y, z] (canonical grid) of the tumour that preprocessing found; all False if none."""
    if not find_tumor(case).found:
        return np.zeros(case.shape, dtype=bool)
    for spec in _MASK_ACCESSORS:
        fn = _optional(spec)
        if fn is not None:
            mask = np.asarray(fn(case), dtype=bool)
            if mask.shape == case.shape:
                return mask
    # today's public pieces: the coarse-grid mask that find_tumor refines, brought to full size
    from radpath.preprocess.tumor_slice import tumor_mask_coarse

    coarse = tumor_mask_coarse(case)
    g = max(-(-n // c) for n, c in zip(case.shape, coarse.shape))  # the coarse grid's step
    full = coarse.repeat(g, 0).repeat(g, 1).repeat(g, 2)
    return full[: case.shape[0], : case.shape[1], : case.shape[2]]
