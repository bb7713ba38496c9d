"""Synthetic diffuse gliomas whose MRI look follows the published signs (../shared/DATA.md summary):

- G (glioblastoma): irregular ring of T1ce enhancement around a necrotic core (dark on T1, bright on
  T2), wide FLAIR/T2 oedema, sometimes near or across the midline; about 1 in 8 does not enhance.
- A (astrocytoma): well-defined homogeneous T2-bright lesion; T2-FLAIR mismatch (FLAIR-dark centre
  with a bright rim) in about half; little enhancement or oedema.
- O (oligodendroglioma): frontal in ~60 %, reaches the cortex, heterogeneous, calcified foci (dark
  specks on every sequence) in 40-80 %, patchy faint enhancement in about half, little oedema.
Each sign's prevalence, the size, shape irregularity and texture come from the case's `Style`
(imperfect and overlapping: a few A enhance or calcify, a few O show a mismatch).

Labels follow BraTS: 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing tumour.
FLAIR and T2 are described by an *excess pattern* (0 = the brain's median, 1 = typical lesion
level, negative = darker than the brain): the renderer scales it so that the lesion's median robust
z-score is the case's drawn conspicuity. T1 and T1ce are relative to the case's white matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import BACKGROUND, CSF, Brain
from .fields import smooth_field
from .style import Style, draw_range, draw_sign

NCR, ED, ET = 1, 2, 4

# (FLAIR excess, T2 excess, T1 relative to the case's solid-tumour T1); T1ce = T1 unless enhancing
OEDEMA = (1.0, 1.0, 1.15)
NECROSIS = (0.35, 1.6, 0.6)
ENHANCING = (0.85, 0.8, 1.0)
NONENH_CORE = (1.1, 1.1, 0.95)
A_SOLID = (1.0, 1.15, 0.95)
A_RIM = (0.6, 0.6, 1.15)
O_SOLID = (1.0, 0.95, 1.0)
CALCIFICATION = (-1.5, -1.5, 0.9)
TEXTURE_BY_CLASS = {"G": 1.0, "A": 0.3, "O": 1.5}


@dataclass(frozen=True)
class Tumor:
    """A lesion inside `box` (slices of the brain's box): labels uint8, FLAIR and T2 excess
    patterns, T1 and T1ce relative to white matter (all float32 over the box, 0 off the lesion)."""

    box: tuple[slice, slice, slice]
    seg: np.ndarray
    flair: np.ndarray
    t2: np.ndarray
    t1: np.ndarray
    t1ce: np.ndarray
    signs: dict[str, bool]


def _place(rng: np.random.Generator, brain: Brain, appearance: str, frontal: bool, midline: bool) -> np.ndarray:
    """Centre of the lesion in voxels; O prefers the frontal lobe and the cortex."""
    for _ in range(200):
        side = rng.choice([-1.0, 1.0])
        if appearance == "O":
            v = rng.uniform(0.35, 0.65) if frontal else rng.uniform(-0.6, 0.3)
            u = side * rng.uniform(0.3, 0.5)
            w = rng.uniform(-0.05, 0.45)
            scale = rng.uniform(0.62, 0.75) / np.sqrt(u * u + v * v + w * w)
            u, v, w = u * scale, v * scale, w * scale
        else:
            u = side * (rng.uniform(0.06, 0.14) if midline else rng.uniform(0.22, 0.5))
            v = rng.uniform(0.3, 0.55) if frontal else rng.uniform(-0.55, 0.3)
            w = rng.uniform(-0.15, 0.45)
        c = brain.center + np.array([u, v, w], dtype=np.float32) * brain.radii
        idx = tuple(int(round(x)) for x in c)
        if all(0 <= i < n for i, n in zip(idx, brain.tissue.shape)) and brain.tissue[idx] not in (BACKGROUND, CSF):
            return c
    raise RuntimeError("could not place a tumour inside the synthetic brain")


def _distance(
    rng: np.random.Generator, shape: tuple[int, ...], center: np.ndarray, radius: float, irregularity: float
) -> np.ndarray:
    """Normalised distance (1 = surface) to a randomly rotated, irregular ellipsoid."""
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = radius * rng.uniform(0.75, 1.25, 3)
    axis_grids = [
        (np.arange(n, dtype=np.float32) - np.float32(c)).reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, c) in enumerate(zip(shape, center))
    ]
    t = np.zeros(shape, dtype=np.float32)
    for k in range(3):  # rotated coordinate k, scaled by its semi-axis (open grids: no (n, 3) array)
        w = (q[:, k] / axes[k]).astype(np.float32)
        t += (axis_grids[0] * w[0] + axis_grids[1] * w[1] + axis_grids[2] * w[2]) ** 2
    np.sqrt(t, out=t)
    cells = tuple(max(3, n // 12) for n in shape)
    field = smooth_field(rng, shape, cells)  # always drawn: the stream does not depend on the value
    if irregularity > 0:
        t = t * (1.0 + irregularity * np.tanh(field))
    return t


def _blobs(rng: np.random.Generator, t: np.ndarray, inside: float, count: int, radius: float) -> np.ndarray:
    """bool mask of `count` small balls with centres inside t < `inside`."""
    out = np.zeros(t.shape, dtype=bool)
    candidates = np.argwhere(t < inside)
    if len(candidates) == 0:
        return out
    coords = np.ogrid[tuple(slice(0, n) for n in t.shape)]
    for k in rng.choice(len(candidates), size=min(count, len(candidates)), replace=False):
        c = candidates[k]
        r = radius * rng.uniform(0.7, 1.3)
        out |= sum((g - ci) ** 2 for g, ci in zip(coords, c)) <= r * r
    return out


def draw_signs(rng: np.random.Generator, appearance: str, style: Style) -> dict[str, bool]:
    """Which signs this lesion shows (every sign drawn for every class: a fixed random stream)."""
    own = appearance
    p = {
        "enhancing": {"G": style.g_ring, "A": style.a_enhancing, "O": style.o_patchy}[own],
        "mismatch": style.a_mismatch if own == "A" else style.other_mismatch,
        "calcified": style.o_calcified if own == "O" else style.other_calcified,
        "frontal": style.o_frontal if own == "O" else (0.3, 0.3),
        "midline": style.g_midline if own == "G" else (0.0, 0.0),
    }
    return {k: draw_sign(rng, v) for k, v in p.items()}


def make_tumor(rng: np.random.Generator, brain: Brain, appearance: str, style: Style) -> Tumor:
    """One lesion drawn with the look of class `appearance` ('A', 'O' or 'G') from `style`'s ranges."""
    shape = brain.tissue.shape
    unit = brain.shape[0] / 240.0  # voxels per mm (1 at full size)
    signs = draw_signs(rng, appearance, style)
    size = draw_range(rng, style.lesion_scale)
    irregularity = draw_range(rng, style.irregularity)
    texture = draw_range(rng, style.texture) * TEXTURE_BY_CLASS[appearance]
    enhancement = draw_range(rng, style.enhancement)
    lesion_t1 = draw_range(rng, style.lesion_t1)
    center = _place(rng, brain, appearance, signs["frontal"], signs["midline"])
    base = {"G": (13, 20), "A": (14, 25), "O": (15, 25)}[appearance]  # mm; G's oedema reaches 1.3-1.6x
    radius = unit * size * rng.uniform(*base)
    reach = 1.9 if appearance == "G" else 1.25
    lo = np.maximum(np.floor(center - reach * radius * 1.4).astype(int), 0)
    hi = np.minimum(np.ceil(center + reach * radius * 1.4).astype(int) + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    bshape = tuple(int(b - a) for a, b in zip(lo, hi))
    c_local = (center - lo).astype(np.float32)
    tissue = brain.tissue[box]
    seg = np.zeros(bshape, dtype=np.uint8)
    vals = np.zeros((4,) + bshape, dtype=np.float32)  # flair excess, t2 excess, t1, t1ce
    cells = tuple(max(3, n // 6) for n in bshape)

    def paint(mask: np.ndarray, label: int, value: tuple[float, float, float], tex: float) -> None:
        seg[mask] = label
        noise = 1.0 + tex * smooth_field(rng, bshape, cells)[mask]
        vals[0][mask] = value[0] * noise
        vals[1][mask] = value[1] * noise
        vals[2][mask] = value[2] * lesion_t1 * noise
        vals[3][mask] = value[2] * lesion_t1 * noise

    def enhance(mask: np.ndarray, ratio: float) -> None:
        seg[mask] = ET
        vals[3][mask] = ratio

    if appearance == "G":
        t = _distance(rng, bshape, c_local, radius, 0.1 + irregularity)
        t_ed = _distance(rng, bshape, c_local, radius * rng.uniform(1.3, 1.6), 0.15 + irregularity)
        necrotic_r = rng.uniform(0.45, 0.7)
        paint((t_ed < 1) & (t >= 1), ED, OEDEMA, 0.2 * texture)
        if signs["enhancing"]:
            paint(t < 1, ET, ENHANCING, 0.5 * texture)
            enhance((t < 1) & (t >= necrotic_r), enhancement)
            paint(t < necrotic_r, NCR, NECROSIS, 0.3 * texture)
        else:
            paint(t < 1, NCR, NONENH_CORE, 0.6 * texture)
            paint(t < necrotic_r * 0.8, NCR, NECROSIS, 0.3 * texture)
    elif appearance == "A":
        t = _distance(rng, bshape, c_local, radius, 0.3 * irregularity)
        paint((t < 1.12) & (t >= 1), ED, A_RIM, 0.1 * texture)
        paint(t < 1, NCR, A_SOLID, 0.1 * texture)
        if signs["enhancing"]:
            enhance(_blobs(rng, t, 0.7, 1, 2.5 * unit) & (t < 1), 0.8 * enhancement)
    else:
        t = _distance(rng, bshape, c_local, radius, irregularity)
        paint((t < 1.1) & (t >= 1), ED, A_RIM, 0.3 * texture)
        paint(t < 1, NCR, O_SOLID, texture)
        if signs["enhancing"]:
            patch = _blobs(rng, t, 0.85, int(rng.integers(2, 5)), 3.0 * unit) & (t < 1)
            enhance(patch, 0.75 * enhancement)
    if signs["mismatch"]:
        centre = (t < rng.uniform(0.7, 0.82)) & (seg != ET)
        vals[0][centre] = -rng.uniform(0.1, 0.5)
    if signs["calcified"]:
        calc = _blobs(rng, t, 0.85, int(rng.integers(3, 9)), 1.6 * unit + 0.6) & (t < 1)
        for i, x in enumerate(CALCIFICATION[:2]):
            vals[i][calc] = x
        vals[2][calc] = vals[3][calc] = CALCIFICATION[2] * lesion_t1
        seg[calc & (seg == 0)] = NCR
    # tumour infiltrates tissue, not the CSF spaces or the background
    off = (tissue == BACKGROUND) | ((tissue == CSF) & (seg == ED))
    seg[off] = 0
    vals[:, seg == 0] = 0.0
    signs["enhancing"] = bool((seg == ET).any())
    return Tumor(box=box, seg=seg, flair=vals[0], t2=vals[1], t1=vals[2], t1ce=vals[3], signs=signs)
