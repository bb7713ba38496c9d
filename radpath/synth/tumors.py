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

import functools
from dataclasses import dataclass

import numpy as np

from .anatomy import BACKGROUND, CSF, PERIVENTRICULAR, Brain, Push, load_atlas
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


FRONTAL_MM = 8.0
"""frontal = more than this in front of the template brain's centre (about the premotor cortex)"""


@functools.lru_cache(maxsize=16)
def _pool(appearance: str, frontal: bool, midline: bool, side: int) -> np.ndarray:
    """Template voxels (int [N, 3], BraTS grid) where a lesion of this kind may be centred: white
    matter of the cerebrum (not the deep grey nuclei, ventricles, brainstem or cerebellum), on the
    drawn side; O near the cortex (it reaches it), G sometimes in the corpus callosum (midline)."""
    atlas = load_atlas()
    lo = np.array([s.start for s in atlas.box])
    cx, cy, cz = atlas.center - lo
    x, y, z = np.ogrid[tuple(slice(0, n) for n in atlas.wm.shape)]
    ok = (atlas.wm > 150) & ((atlas.region == 0) | (atlas.region == PERIVENTRICULAR)) & (z > cz - 12) & (z < cz + 32)
    ok &= ~((z < cz + 5) & (y < cy - 25))  # cerebellum
    ok &= (y > cy + FRONTAL_MM) if frontal else (y < cy + FRONTAL_MM - 12)
    if midline:
        ok &= (np.abs(x - cx) < 9) & (atlas.depth > 18)
    else:
        ok &= (x - cx) * side > 9
        ok &= (atlas.depth >= 7) & (atlas.depth <= 15) if appearance == "O" else atlas.depth >= 11
    return np.argwhere(ok) + lo


def _place(rng: np.random.Generator, appearance: str, frontal: bool, midline: bool) -> np.ndarray:
    """Centre of the lesion in template voxels (two draws whatever the pool)."""
    side = 1 if rng.random() < 0.5 else -1
    pool = _pool(appearance, frontal, midline, side)
    if len(pool) == 0:  # never with the shipped template; a safe fallback
        pool = _pool(appearance, False, False, side)
    return pool[int(rng.integers(len(pool)))].astype(np.float64)


@dataclass(frozen=True)
class LesionPlan:
    """What a lesion will be, drawn before the brain is built (its mass effect shapes the brain)."""

    appearance: str
    signs: dict[str, bool]
    center: np.ndarray
    """template voxel (BraTS grid)"""
    radius_mm: float
    irregularity: float
    texture: float
    enhancement: float
    lesion_t1: float
    push: Push


def plan_lesion(rng: np.random.Generator, appearance: str, style: Style) -> LesionPlan:
    """One lesion's signs, size, look and place, drawn from `style`'s ranges (a fixed random stream)."""
    signs = draw_signs(rng, appearance, style)
    size = draw_range(rng, style.lesion_scale)
    irregularity = draw_range(rng, style.irregularity)
    texture = draw_range(rng, style.texture) * TEXTURE_BY_CLASS[appearance]
    enhancement = draw_range(rng, style.enhancement)
    lesion_t1 = draw_range(rng, style.lesion_t1)
    center = _place(rng, appearance, signs["frontal"], signs["midline"])
    base = {"G": (13, 20), "A": (14, 24), "O": (15, 25)}[appearance]  # mm (core); G adds oedema
    radius = size * rng.uniform(*base)
    strength = rng.uniform(*{"G": (0.3, 0.55), "A": (0.2, 0.4), "O": (0.15, 0.35)}[appearance])
    push = Push(center=center, radius_mm=radius * (1.25 if appearance == "G" else 1.0), strength=strength)
    return LesionPlan(appearance, signs, center, radius, irregularity, texture, enhancement, lesion_t1, push)


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


def make_tumor(rng: np.random.Generator, brain: Brain, lesion: LesionPlan) -> Tumor:
    """The lesion of `lesion` grown in `brain` (built with the lesion's push): its core centred in white
    matter, its oedema following the white matter (the cortex spared), painted on the brain's box."""
    shape = brain.tissue.shape
    unit = brain.shape[0] / 240.0  # voxels per mm (1 at full size)
    appearance, signs = lesion.appearance, dict(lesion.signs)
    irregularity, texture = lesion.irregularity, lesion.texture
    enhancement, lesion_t1 = lesion.enhancement, lesion.lesion_t1
    center = brain.lesion_center if brain.lesion_center is not None else brain.to_box(lesion.center)
    radius = unit * lesion.radius_mm
    reach = 1.9 if appearance == "G" else 1.25
    lo = np.clip(np.floor(center - reach * radius * 1.4).astype(int), 0, np.array(shape) - 1)
    hi = np.maximum(np.minimum(np.ceil(center + reach * radius * 1.4).astype(int) + 1, shape), lo + 1)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    bshape = tuple(int(b - a) for a, b in zip(lo, hi))
    c_local = (center - lo).astype(np.float32)
    tissue = brain.tissue[box]
    wmf = brain.wm[box]
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
        # irregularity capped: a strongly lobulated surface at this radius is a far bigger lesion
        t = _distance(rng, bshape, c_local, radius, min(0.3, 0.1 + irregularity))
        t_ed = _distance(rng, bshape, c_local, radius * rng.uniform(1.25, 1.65), min(0.35, 0.15 + irregularity))
        necrotic_r = rng.uniform(0.45, 0.7)
        # vasogenic oedema spreads along white matter and spares the cortex (finger-like), and always
        # rims the core where there is white matter
        zone = (t_ed < 0.7 + 0.35 * wmf) | (t < 1.0 + 0.25 * wmf)
        paint(zone & (wmf > 0.25) & (t >= 1), ED, OEDEMA, 0.2 * texture)
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
