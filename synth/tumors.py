"""Synthetic diffuse gliomas whose MRI look follows the published signs (../shared/DATA.md summary):

- G (glioblastoma): irregular ring of T1ce enhancement around a necrotic core (dark on T1, bright on
  T2), wide FLAIR/T2 oedema; about 1 in 8 does not enhance.
- A (astrocytoma): well-defined homogeneous T2-bright lesion; T2-FLAIR mismatch (FLAIR-dark centre
  with a bright rim) in about half; little enhancement or oedema.
- O (oligodendroglioma): frontal in ~60 %, reaches the cortex, heterogeneous, calcified foci (dark
  specks on every sequence) in ~60 %, patchy faint enhancement in about half, little oedema.

Labels follow BraTS: 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing tumour.
Values are relative intensities per sequence (white matter T1 = 1), scaled per scan later.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import BACKGROUND, CSF, Brain
from .fields import smooth_field

SEQ_ORDER = ("flair", "t1", "t1ce", "t2")
NCR, ED, ET = 1, 2, 4

# relative intensity of each compartment: (flair, t1, t1ce, t2)
OEDEMA = (0.95, 0.66, 0.68, 1.00)
NECROSIS = (0.55, 0.35, 0.38, 1.20)
ENHANCING = (0.85, 0.75, 1.60, 0.85)
NONENH_CORE = (0.88, 0.58, 0.60, 1.05)
A_SOLID = (0.92, 0.55, 0.57, 1.10)
O_SOLID = (0.86, 0.60, 0.62, 0.95)
CALCIFICATION = (0.18, 0.50, 0.50, 0.15)


@dataclass(frozen=True)
class Tumor:
    """A tumour inside `box` (slices of the full volume): labels uint8 and per-sequence values."""

    box: tuple[slice, slice, slice]
    seg: np.ndarray
    values: dict[str, np.ndarray]
    signs: dict[str, bool]


def _place(rng: np.random.Generator, brain: Brain, appearance: str) -> tuple[np.ndarray, dict[str, bool]]:
    """Centre of the lesion in voxels; O prefers the frontal lobe and the cortex."""
    signs: dict[str, bool] = {}
    for _ in range(200):
        side = rng.choice([-1.0, 1.0])
        if appearance == "O":
            frontal = rng.random() < 0.6
            signs["frontal"] = bool(frontal)
            v = rng.uniform(0.35, 0.65) if frontal else rng.uniform(-0.6, 0.3)
            u = side * rng.uniform(0.3, 0.5)
            w = rng.uniform(-0.05, 0.45)
            scale = rng.uniform(0.68, 0.78) / np.sqrt(u * u + v * v + w * w)
            u, v, w = u * scale, v * scale, w * scale
        else:
            u, v, w = side * rng.uniform(0.22, 0.5), rng.uniform(-0.55, 0.55), rng.uniform(-0.15, 0.45)
        c = brain.center + np.array([u, v, w], dtype=np.float32) * brain.radii
        idx = tuple(int(round(x)) for x in c)
        if all(0 <= i < n for i, n in zip(idx, brain.tissue.shape)) and brain.tissue[idx] not in (BACKGROUND, CSF):
            return c, signs
    raise RuntimeError("could not place a tumour inside the synthetic brain")


def _distance(rng: np.random.Generator, shape: tuple[int, ...], center: np.ndarray,
              radius: float, irregularity: float) -> np.ndarray:
    """Normalised distance (1 = surface) to a randomly rotated, irregular ellipsoid."""
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = radius * rng.uniform(0.75, 1.25, 3)
    coords = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), axis=-1)
    local = (coords - center) @ q.astype(np.float32)
    t = np.sqrt(((local / axes.astype(np.float32)) ** 2).sum(-1))
    if irregularity > 0:
        cells = tuple(max(3, n // 12) for n in shape)
        t = t * (1.0 + irregularity * np.tanh(smooth_field(rng, shape, cells)))
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


def make_tumor(rng: np.random.Generator, brain: Brain, appearance: str) -> Tumor:
    """One lesion drawn with the look of class `appearance` ('A', 'O' or 'G')."""
    shape = brain.tissue.shape
    unit = shape[0] / 240.0  # 1 mm at full size
    center, signs = _place(rng, brain, appearance)
    radius = unit * {"G": rng.uniform(10, 18), "A": rng.uniform(11, 22), "O": rng.uniform(11, 20)}[appearance]
    reach = 1.9 if appearance == "G" else 1.25
    lo = np.maximum(np.floor(center - reach * radius * 1.4).astype(int), 0)
    hi = np.minimum(np.ceil(center + reach * radius * 1.4).astype(int) + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    bshape = tuple(int(b - a) for a, b in zip(lo, hi))
    c_local = (center - lo).astype(np.float32)
    tissue = brain.tissue[box]
    seg = np.zeros(bshape, dtype=np.uint8)
    vals = np.zeros((4,) + bshape, dtype=np.float32)
    cells = tuple(max(3, n // 6) for n in bshape)

    def paint(mask: np.ndarray, label: int, value: tuple[float, ...], texture: float = 0.0) -> None:
        seg[mask] = label
        noise = smooth_field(rng, bshape, cells) if texture else None
        for i, x in enumerate(value):
            vals[i][mask] = x * (1.0 + texture * noise[mask]) if noise is not None else x

    if appearance == "G":
        t = _distance(rng, bshape, c_local, radius, 0.15)
        t_ed = _distance(rng, bshape, c_local, radius * rng.uniform(1.3, 1.65), 0.25)
        paint((t_ed < 1) & (t >= 1), ED, OEDEMA, 0.04)
        enhancing = rng.random() >= 1 / 8
        signs["enhancing"] = bool(enhancing)
        necrotic_r = rng.uniform(0.45, 0.7)
        if enhancing:
            paint(t < 1, ET, ENHANCING, 0.1)
            paint(t < necrotic_r, NCR, NECROSIS, 0.06)
        else:
            paint(t < 1, NCR, NONENH_CORE, 0.12)
            paint(t < necrotic_r * 0.8, NCR, NECROSIS, 0.06)
    elif appearance == "A":
        t = _distance(rng, bshape, c_local, radius, 0.05)
        paint((t < 1.12) & (t >= 1), ED, OEDEMA, 0.03)
        paint(t < 1, NCR, A_SOLID, 0.025)
        mismatch = rng.random() < 0.47
        signs["mismatch"] = bool(mismatch)
        if mismatch:
            centre = t < rng.uniform(0.7, 0.82)
            vals[0][centre] = rng.uniform(0.3, 0.42)
        if rng.random() < 0.1:
            spot = _blobs(rng, t, 0.7, 1, 2.5 * unit)
            seg[spot] = ET
            vals[2][spot] *= 1.35
    else:
        t = _distance(rng, bshape, c_local, radius, 0.15)
        paint((t < 1.1) & (t >= 1), ED, OEDEMA, 0.05)
        paint(t < 1, NCR, O_SOLID, 0.16)
        calcified = rng.random() < 0.6
        signs["calcified"] = bool(calcified)
        if calcified:
            calc = _blobs(rng, t, 0.85, int(rng.integers(3, 9)), 1.6 * unit + 0.6) & (t < 1)
            for i, x in enumerate(CALCIFICATION):
                vals[i][calc] = x
        if rng.random() < 0.5:
            patch = _blobs(rng, t, 0.85, int(rng.integers(2, 5)), 3.0 * unit) & (t < 1)
            seg[patch] = ET
            vals[2][patch] *= 1.4
        signs["patchy_enhancement"] = bool((seg == ET).any())
    # tumour infiltrates tissue, not the CSF spaces or the background
    seg[(tissue == BACKGROUND) | ((tissue == CSF) & (seg == ED))] = 0
    values = {name: vals[i] for i, name in enumerate(SEQ_ORDER)}
    return Tumor(box=box, seg=seg, values=values, signs=signs)
