"""The model input and output: the one definition training, export, serving and the client share.

Input: float32 [batch, IMAGE_SIZE, IMAGE_SIZE, len(VIEWS) * len(CHANNELS)], channels-last: for each
view in VIEWS, the four sequences in the order CHANNELS (the CPM-RadPath sequence names), robust
z-scores with background exactly 0 (see `preprocess.model_input`). The views: the whole brain at the
slice (context: where the tumour is, how big, midline), and the same slice zoomed onto the found
tumour (its parts, at two to three times the resolution). Output: probabilities [batch,
len(CLASSES)] in the order CLASSES.

Dtype and rounding (one contract for training and serving): every model input value is a float32
that float16 represents exactly (`round_input`). The training cache stores float16 (half the disk
and memory of float32) and loses nothing; the client rounds the same way before sending float32.
So the values the model sees at evaluation and at serving are bit-identical, not merely close.
The z-scores are clipped to [-5, 10], well inside float16's range; rounding moves a value by at
most 2^-11 of itself.

Test-time averaging: the max-tumour slice and its neighbours (TTA_OFFSETS), each also flipped left-
right: `tta_views` builds them for the client and for training's `predict_proba`, so the two can
never drift apart.

Age: models trained with age take it as a second input; a case without age gets AGE_FILL_DAYS
(`fill_ages`), in training, export warm-up and the client alike.

Tumour statistics: models that read them (trained with `stats_fusion`, the demo's recipe, or
`tumor_stats`) take a third input, float32 [batch,
len(TUMOR_STATS)], what `preprocess.tumor_stats` measures in 3-D inside the whole detected tumour (its
size, where it lies, the robust z-scores of each sequence, its enhancing, mismatch and dark shares):
what one slice cannot show. Every row of one case carries the same values (a left-right flip leaves
them unchanged: they do not depend on the side).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IMAGE_SIZE = 224
"""Rows and columns of the model input (pixels)."""

CHANNELS: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
"""Sequence names as in the CPM-RadPath file names, in the channel order of the model input."""

VIEWS: tuple[str, ...] = ("brain", "tumour")
"""The views stacked in the channels, each centred on its own square of the slice (`preprocess.model_input`):
"brain" the brain's bounding square, "tumour" a square around the found tumour."""

IMAGE_SHAPE: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, len(VIEWS) * len(CHANNELS))
"""One example: [rows, columns, channels]; channel `v * len(CHANNELS) + c` is sequence c in view v."""

INPUT_DTYPE = np.float32
"""What the SavedModel takes (values rounded to float16 precision: see `round_input`)."""

STORAGE_DTYPE = np.float16
"""How training stores examples: exact for every value `round_input` returns."""

CLASSES: tuple[str, ...] = ("A", "O", "G")
"""Class order of every probability vector in the project (model output, CSV columns)."""

CLASS_NAMES: dict[str, str] = {
    "A": "Lower-grade astrocytoma, IDH-mutant",
    "O": "Oligodendroglioma, IDH-mutant, 1p/19q-codeleted",
    "G": "Glioblastoma, IDH-wildtype",
}
"""Full name of each class (WHO CNS 2016/2021 terms), for people reading results."""

NUM_CLASSES = len(CLASSES)

AGE_FILL_DAYS = 50 * 365.25
"""Age used when a case has none (training, export warm-up, the client); only models trained with
age read it."""

TUMOR_STATS: tuple[str, ...] = (
    "found",
    "log10_brain_fraction",
    "front",
    "lateral",
    "height",
    "across_midline",
    "axial_extent",
    *(f"{seq}_{stat}" for seq in CHANNELS for stat in ("mean", "sd", "p10", "p50", "p90")),
    "enhancing_share",
    "enhancing_strong_share",
    "mismatch_share",
    "dark_share",
    "flair_minus_t2",
)
"""The tumour statistics' names, in the order of the model's third input (`preprocess.tumor_stats`
says what each one is)."""

TTA_OFFSETS: tuple[int, ...] = (-1, 0, 1)
"""Slices averaged at test time, relative to the max-tumour slice; each is also flipped left-right."""

FLIP_AXIS = -2
"""Left-right flip of an example [..., rows, columns, channels]: the columns axis."""


def view_channels(view: str) -> slice:
    """The channels of one view in the model input (`x[..., view_channels("tumour")]`)."""
    v = VIEWS.index(view)
    return slice(v * len(CHANNELS), (v + 1) * len(CHANNELS))


def split_views(x: np.ndarray) -> np.ndarray:
    """[..., V * C] model input -> [..., V, C]: one axis per view (a view, not a copy; numpy or JAX)."""
    return x.reshape(*x.shape[:-1], len(VIEWS), len(CHANNELS))


def round_input(x: np.ndarray) -> np.ndarray:
    """float32 copy of `x` rounded to float16 precision: what every model input holds."""
    return np.asarray(x).astype(STORAGE_DTYPE).astype(INPUT_DTYPE)


def check_input(x: np.ndarray) -> None:
    """Raise ValueError unless `x` is a batch [n, *IMAGE_SHAPE] of finite values."""
    if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"model input must be [n, {', '.join(map(str, IMAGE_SHAPE))}], got {list(x.shape)}")
    if not all_finite(x):
        raise ValueError("model input holds NaN or infinite values")


def all_finite(x: np.ndarray, block: int = 1 << 20) -> bool:
    """Whether every value of `x` is finite. Every model input is checked, on the client and again on
    the server, so this sits in every round trip: numpy's SIMD isfinite is the fastest check measured
    (0.11 ms against 0.43 ms for a float64 sum, batch 8 of the 4-channel input), and taking it `block`
    values at a time keeps its boolean array small whatever the input's size."""
    if x.dtype.kind not in "fc":
        return True
    flat = x.reshape(-1)
    return all(bool(np.isfinite(flat[i : i + block]).all()) for i in range(0, flat.size, block))


def tta_offsets(available: Sequence[int]) -> tuple[int, ...]:
    """The TTA offsets among `available` (training caches may hold fewer neighbours)."""
    return tuple(o for o in TTA_OFFSETS if o in available)


def tta_views(slices: np.ndarray) -> np.ndarray:
    """[..., k, H, W, C] slices (one per TTA offset) -> [..., 2k, H, W, C]: the slices, then each
    flipped left-right. Averaging the model's probabilities over axis -4 is test-time averaging."""
    return np.concatenate([slices, np.flip(slices, axis=FLIP_AXIS)], axis=-4)


def fill_ages(ages_days: np.ndarray | Sequence[float | None] | None, n: int) -> np.ndarray:
    """float32 [n] ages in days, unknown (None or NaN) replaced by AGE_FILL_DAYS."""
    if ages_days is None:
        return np.full(n, AGE_FILL_DAYS, np.float32)
    ages = np.array([np.nan if a is None else a for a in np.asarray(ages_days, dtype=object).reshape(-1)], np.float64)
    if ages.shape != (n,):
        raise ValueError(f"{ages.size} ages for {n} images")
    return np.nan_to_num(ages, nan=AGE_FILL_DAYS).astype(np.float32)
