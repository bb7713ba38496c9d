"""Load user-provided ImageNet-style weights into the first layers (no download exists here).

The file is an `.npz` whose keys are parameter paths joined by '/', as Flax names them
(`conv_init/kernel`, `Bottleneck_0/Conv_0/kernel`, ...). Matching shapes are copied. A first
convolution trained on 3-channel RGB ([7, 7, 3, W]) is adapted to our 4 MRI channels by giving
every channel the RGB mean, scaled by 3/4 to keep the activation scale.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from flax import traverse_util

log = logging.getLogger(__name__)


def load_partial(params: dict, path: str | Path) -> tuple[dict, list[str]]:
    """(params with matching entries replaced, list of the keys loaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init-weights {path}: file not found")
    flat = traverse_util.flatten_dict(params, sep="/")
    loaded = []
    with np.load(path) as weights:
        for key in weights.files:
            if key not in flat:
                continue
            w = weights[key]
            target = flat[key].shape
            if (
                w.shape != target
                and w.ndim == 4
                and w.shape[:2] + w.shape[3:] == target[:2] + target[3:]
                and w.shape[2] == 3
            ):
                w = np.repeat(w.mean(axis=2, keepdims=True), target[2], axis=2) * (3.0 / target[2])
            if w.shape != target:
                log.warning("--init-weights: %s has shape %s, the model needs %s; skipped", key, w.shape, target)
                continue
            flat[key] = w.astype(np.asarray(flat[key]).dtype)
            loaded.append(key)
    if not loaded:
        raise ValueError(f"--init-weights {path}: no parameter name matches this model (e.g. {next(iter(flat))})")
    log.info("loaded %d tensors from %s", len(loaded), path)
    return traverse_util.unflatten_dict(flat, sep="/"), loaded
