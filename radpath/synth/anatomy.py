"""Synthetic brain anatomy: a skull-stripped, brain-shaped volume of CSF, grey and white matter.

Not a real brain and never described as one. Enough structure that a tumour detector and a
classifier must find the lesion rather than "anything bright": a folded cortical ribbon, sulcal and
ventricular CSF (bright on T2, dark on FLAIR, as oedema is not), deep grey nuclei, the
interhemispheric fissure, and per-case variation of size, shape, position and ventricle size.
Coordinates are fractions of the volume, so the same code makes 240 x 240 x 155 and test-sized cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fields import grid, smooth_field

BACKGROUND, CSF, GM, WM = 0, 1, 2, 3


@dataclass(frozen=True)
class Brain:
    """Tissue labels uint8 [x, y, z] (RAS) of the brain's bounding box `box` (slices of the full
    volume of shape `shape`), and the ellipsoid that bounds the brain, in the box's voxels.

    Everything downstream works inside the box (about 40 % of the volume): the background outside
    it costs nothing until the files are written.
    """

    tissue: np.ndarray
    center: np.ndarray
    radii: np.ndarray
    box: tuple[slice, slice, slice]
    shape: tuple[int, int, int]
    wmh: np.ndarray | None = None
    """uint8 over the box: candidate white-matter hyperintensities (small vascular lesions, bright on
    FLAIR and T2, common with age; NOT tumour), ranked 1..WMH_CANDIDATES; a case shows the first n"""
    wmh_age: float = 0.0
    """0..1: how much of the candidate load this age carries"""
    vessels: np.ndarray | None = None
    """bool over the box: normal structures that enhance on T1ce (choroid plexus, sagittal sinus)"""


WMH_CANDIDATES = 14


def make_brain(rng: np.random.Generator, shape: tuple[int, int, int], age_years: float) -> Brain:
    """Random brain anatomy; ventricles widen with age, as they do."""
    shape_arr = np.array(shape, dtype=np.float32)
    radii = shape_arr * np.array([0.29, 0.36, 0.42], dtype=np.float32) * rng.uniform(0.9, 1.06, 3).astype(np.float32)
    center = shape_arr / 2 + rng.uniform(-0.03, 0.03, 3).astype(np.float32) * shape_arr
    center[2] = shape[2] * rng.uniform(0.5, 0.56)
    # the surface is at d = 1 with d scaled by at most (1 + 0.035 * ~4): 1.2 radii (+2 voxels) bounds it
    lo = np.maximum(np.floor(center - 1.2 * radii) - 2, 0).astype(int)
    hi = np.minimum(np.ceil(center + 1.2 * radii) + 3, shape_arr).astype(int)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    shape = tuple(int(b - a) for a, b in zip(lo, hi))
    center = center - lo.astype(np.float32)
    u, v, w = grid(shape, center, radii)
    w_flat = np.where(w < 0, w * 1.25, w)  # flatter base
    d = np.sqrt(u * u + v * v + w_flat * w_flat)
    full = shape_arr.astype(int)

    def cells(c: tuple[int, int, int]) -> tuple[int, ...]:  # as many per mm as over the full volume
        return tuple(max(3, int(round(k * n / f))) for k, n, f in zip(c, shape, full))

    d = d * (1.0 + 0.035 * smooth_field(rng, shape, cells((5, 5, 4))))
    folds = smooth_field(rng, shape, cells((18, 22, 14)))
    sulci = smooth_field(rng, shape, cells((24, 28, 18)))

    tissue = np.full(shape, WM, dtype=np.uint8)
    tissue[d > 0.86 + 0.05 * folds] = GM
    tissue[(d > 0.9) & (sulci > 1.1)] = CSF
    tissue[d > 0.985] = CSF
    deep_gm = (((np.abs(u) - 0.22) / 0.1) ** 2 + (v / 0.2) ** 2 + ((w + 0.02) / 0.12) ** 2) < 1
    tissue[deep_gm] = GM
    vent = 0.85 + 0.01 * max(age_years - 30.0, 0.0) * rng.uniform(0.6, 1.4)
    ventricles = (
        ((np.abs(u) - 0.12) / (0.06 * vent)) ** 2 + ((v + 0.05) / 0.33) ** 2 + ((w - 0.12) / (0.12 * vent)) ** 2
    ) < 1
    tissue[ventricles] = CSF
    fissure = (np.abs(u) < 0.018 * (1 + 0.5 * np.abs(folds))) & (w > -0.1) & (d > 0.25)
    tissue[fissure & (d < 1)] = CSF
    tissue[d >= 1] = BACKGROUND
    # enhancing normal structures (T1ce-bright without any tumour): choroid plexus in the ventricles'
    # atria and the superior sagittal sinus along the top of the falx
    plexus = ventricles & (
        (((np.abs(u) - 0.12) / (0.045 * vent)) ** 2 + ((v + 0.3) / 0.09) ** 2 + ((w - 0.1) / (0.07 * vent)) ** 2) < 1
    )
    sinus = (np.abs(u) < 0.03) & (d > 0.93) & (d < 1.0) & (w > 0.2)
    wmh = _wmh_candidates(rng, tissue, center, radii, float(shape_arr[0]) / 240.0)
    return Brain(
        tissue=tissue,
        center=center,
        radii=radii,
        box=box,
        shape=tuple(int(n) for n in shape_arr),
        wmh=wmh,
        wmh_age=float(np.clip((age_years - 35.0) / 45.0, 0.0, 1.0)),
        vessels=plexus | sinus,
    )


def _wmh_candidates(
    rng: np.random.Generator, tissue: np.ndarray, center: np.ndarray, radii: np.ndarray, unit: float
) -> np.ndarray:
    """Ranked candidate white-matter hyperintensities: periventricular caps and deep punctate foci,
    1.5-5 mm, in white matter only (a fixed number of draws whatever is shown)."""
    out = np.zeros(tissue.shape, dtype=np.uint8)
    for k in range(1, WMH_CANDIDATES + 1):
        periventricular = rng.random() < 0.5
        side = rng.choice([-1.0, 1.0])
        if periventricular:
            uvw = np.array(
                [
                    side * rng.uniform(0.12, 0.25),
                    rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.4),
                    rng.uniform(0.05, 0.3),
                ]
            )
        else:
            uvw = np.array([side * rng.uniform(0.15, 0.55), rng.uniform(-0.55, 0.55), rng.uniform(-0.05, 0.5)])
        r = unit * rng.uniform(1.5, 5.0) * (1.6 if periventricular else 1.0)
        c = center + uvw.astype(np.float32) * radii
        lo = np.maximum(np.floor(c - r) - 1, 0).astype(int)
        hi = np.minimum(np.ceil(c + r) + 2, tissue.shape).astype(int)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        g = np.ogrid[box]
        ball = sum((gi - ci) ** 2 for gi, ci in zip(g, c)) <= r * r
        sub = out[box]
        sub[ball & (tissue[box] == WM) & (sub == 0)] = k
    return out
