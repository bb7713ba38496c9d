"""Synthetic brain anatomy from a real template: the ICBM 2009a tissue maps, placed on the BraTS grid,
deformed per case.

The maps (grey matter, white matter, CSF as partial-volume fractions; ventricles, deep grey nuclei,
choroid plexus, the sagittal sinus's strip and the periventricular white matter as regions) were
derived once from the ICBM 2009a nonlinear symmetric template, affinely placed on the SRI24 atlas's
BraTS grid (240 x 240 x 155, 1 mm) as the BraTS releases are (scripts/derive_anatomy), and ship as
package data with the template's copyright notice (data/ICBM2009a_NOTICE.txt). Each case samples
them through its own transform, SynthSeg-style (Billot et al., MedIA 2023):
  output voxel -> mass effect of the lesion (tissue pushed away from its centre) -> a small random
  affine (size, pose) -> a random smooth deformation -> age-dependent ventricle widening -> template,
and sulci widen with age (more CSF in the cortex's partial-volume voxels). The result is one real
brain shape with per-case variation, never a real person's brain. Any output shape works: the
template is sampled at the output's spacing (240 x 240 x 155 is 1 mm).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .fields import smooth_field

BACKGROUND, CSF, GM, WM = 0, 1, 2, 3
VENTRICLE, DEEP_GREY, PLEXUS, SINUS, PERIVENTRICULAR = 1, 2, 3, 4, 5
"""region labels of the template (data/icbm2009a_brats.npz `region`)"""
BRATS_SHAPE = (240, 240, 155)
ATLAS_FILE = Path(__file__).with_name("data") / "icbm2009a_brats.npz"
NOTICE_FILE = Path(__file__).with_name("data") / "ICBM2009a_NOTICE.txt"
WMH_CANDIDATES = 14


@dataclass(frozen=True)
class Atlas:
    """The template on the BraTS grid, cropped to `box`: fractions and regions (uint8, 255 = 1)."""

    box: tuple[slice, slice, slice]
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    region: np.ndarray
    depth: np.ndarray
    """distance to the brain's surface in mm (uint8)"""
    center: np.ndarray
    """the brain's centre of mass, BraTS voxels"""
    ventricle_center: np.ndarray


@functools.lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """The shipped template maps (read once per process, ~0.1 s)."""
    with np.load(ATLAS_FILE) as z:
        box = tuple(slice(int(a), int(b)) for a, b in z["box"])
        maps = {k: z[k] for k in ("csf", "gm", "wm", "region", "depth")}
    brain = (maps["csf"].astype(np.uint16) + maps["gm"] + maps["wm"]) > 127
    lo = np.array([s.start for s in box], dtype=np.float64)
    center = np.array(ndimage.center_of_mass(brain)) + lo
    ventricle_center = np.array(ndimage.center_of_mass(maps["region"] == VENTRICLE)) + lo
    return Atlas(
        box=(box[0], box[1], box[2]),
        csf=maps["csf"],
        gm=maps["gm"],
        wm=maps["wm"],
        region=maps["region"],
        depth=maps["depth"],
        center=center,
        ventricle_center=ventricle_center,
    )


def anatomy_attribution() -> str:
    """The template's attribution and copyright notice, for every cohort's SYNTHETIC.md (its terms:
    the notice must appear in all copies)."""
    text = NOTICE_FILE.read_text()
    return (
        "## Anatomy\n\n"
        "The brains are built from tissue maps derived from the ICBM 2009a nonlinear symmetric template "
        "(MNI ICBM152 2009a; Fonov et al., NeuroImage 2009 and 2011; Collins et al., IPMI 1999), placed on "
        "the BraTS grid and deformed per case; they are not any person's brain. Its notice:\n\n"
        + text[text.index("Copyright (C)") :].strip()
        + "\n"
    )


@dataclass(frozen=True)
class Push:
    """A lesion's mass effect: tissue within a few radii of `center` (BraTS voxels, template space)
    is pushed outward; `strength` < 0.7 keeps the mapping one-to-one."""

    center: np.ndarray
    radius_mm: float
    strength: float


@dataclass(frozen=True)
class Warp:
    """Output voxel -> template (BraTS) voxel of one case: scale to 1 mm, mass effect, affine, smooth
    displacement (on the brain box's grid), ventricle widening."""

    spacing: np.ndarray
    """mm per output voxel per axis"""
    matrix: np.ndarray
    offset: np.ndarray
    """affine part: template = matrix @ (mm - pivot) + pivot + offset"""
    pivot: np.ndarray
    disp: np.ndarray | None
    """float32 [3, box]: smooth displacement in mm sampled on the brain box's voxels"""
    box_lo: np.ndarray
    vent_center: np.ndarray
    vent_gain: float
    vent_sigma: float
    push: Push | None = None
    push_mm: np.ndarray | None = None
    """the lesion's centre in output mm (found by inverting the rest of the warp)"""

    def to_template(self, idx: np.ndarray, disp: np.ndarray | None = None) -> np.ndarray:
        """float [3, N] template voxel coordinates of output voxel indices idx [3, N]."""
        f = idx.dtype.type
        mm = (idx + f(0.5)) * self.spacing.astype(idx.dtype)[:, None] - f(0.5)
        if self.push is not None and self.push_mm is not None:
            d = mm - self.push_mm.astype(idx.dtype)[:, None]
            sigma = 1.3 * self.push.radius_mm
            shrink = f(self.push.strength) * np.exp(-(d * d).sum(0) / f(2 * sigma * sigma))
            mm = self.push_mm.astype(idx.dtype)[:, None] + d * (f(1.0) - shrink)
        m = self.matrix.astype(idx.dtype)
        a = m @ (mm - self.pivot.astype(idx.dtype)[:, None]) + (self.pivot + self.offset).astype(idx.dtype)[:, None]
        if disp is not None:
            a = a + disp
        elif self.disp is not None:
            a = a + self._disp_at(idx)
        if self.vent_gain > 0:
            vc = self.vent_center.astype(idx.dtype)[:, None]
            d = a - vc
            scale = d / np.array([1.0, 1.6, 1.2], dtype=idx.dtype)[:, None]  # the ventricles are long front to back
            a = vc + d * (f(1.0) - f(self.vent_gain) * np.exp(-(scale * scale).sum(0) / f(2 * self.vent_sigma**2)))
        return a

    def _disp_at(self, idx: np.ndarray) -> np.ndarray:
        assert self.disp is not None
        local = np.rint(idx - self.box_lo[:, None]).astype(int)
        for k in range(3):
            np.clip(local[k], 0, self.disp.shape[k + 1] - 1, out=local[k])
        return self.disp[:, local[0], local[1], local[2]]

    def to_output(self, template_voxel: np.ndarray) -> np.ndarray:
        """Output voxel index (float [3]) whose template position is `template_voxel` (fixed point
        through the affine's inverse; the rest of the warp is small and smooth)."""
        inv = np.linalg.inv(self.matrix)
        idx = (inv @ (template_voxel - self.pivot - self.offset) + self.pivot + 0.5) / self.spacing - 0.5
        for _ in range(6):
            err = template_voxel - self.to_template(idx[:, None])[:, 0]
            idx = idx + (inv @ err) / self.spacing
        return idx


@dataclass(frozen=True)
class Brain:
    """One case's anatomy over the brain's bounding box `box` (slices of the full volume `shape`):
    tissue labels uint8 [x, y, z] (RAS; the largest fraction), the partial-volume fractions of CSF,
    grey and white matter (float32, summing to 1 inside the brain), and the regions.

    Everything downstream works inside the box: the background outside it costs nothing until the
    files are written.
    """

    tissue: np.ndarray
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    region: np.ndarray
    box: tuple[slice, slice, slice]
    shape: tuple[int, int, int]
    warp: Warp
    wmh: np.ndarray | None = None
    """uint8 over the box: candidate white-matter hyperintensities (small vascular lesions, bright on
    FLAIR and T2, common with age; NOT tumour), ranked 1..WMH_CANDIDATES; a case shows the first n"""
    wmh_age: float = 0.0
    """0..1: how much of the candidate load this age carries"""
    vessels: np.ndarray | None = None
    """bool over the box: normal structures that enhance on T1ce (choroid plexus, sagittal sinus)"""
    lesion_center: np.ndarray | None = None
    """the pushing lesion's centre in box voxels (None without a lesion)"""

    @property
    def inside(self) -> np.ndarray:
        return self.tissue > 0

    def to_box(self, template_voxel: np.ndarray) -> np.ndarray:
        """Box voxel coordinates (float [3]) of a template position."""
        lo = np.array([s.start for s in self.box], dtype=np.float64)
        return self.warp.to_output(np.asarray(template_voxel, dtype=np.float64)) - lo


def _draw_warp(
    rng: np.random.Generator, shape: tuple[int, int, int], age_years: float, atlas: Atlas
) -> tuple[Warp, float, float]:
    """The case's transform without its smooth displacement (a fixed number of draws), its sulcal
    atrophy (0..1) and the displacement's amplitude (mm)."""
    spacing = np.array(BRATS_SHAPE, dtype=np.float64) / np.array(shape, dtype=np.float64)
    aged = float(np.clip((age_years - 25.0) / 55.0, 0.0, 1.0))
    # the ventricles' widening pushes the cerebrum out a little: older brains are drawn that much smaller
    size = np.exp(rng.uniform(-0.045, 0.045)) * (1.0 - 0.02 * aged)
    scales = size * np.exp(rng.normal(0.0, 0.02, 3))
    ax, ay, az = np.deg2rad(rng.uniform(-1, 1, 3) * np.array([3.0, 2.0, 2.0]))  # registered: little roll or yaw
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    # template = matrix @ case: a bigger case brain samples the template at a smaller step
    matrix = rz @ ry @ rx @ np.diag(1.0 / scales)
    offset = rng.uniform(-3.0, 3.0, 3)
    disp_mm = rng.uniform(1.0, 3.0)
    vent_gain = aged * rng.uniform(0.35, 0.6)
    sulcal = aged * rng.uniform(0.4, 1.0)
    warp = Warp(
        spacing=spacing,
        matrix=matrix,
        offset=offset,
        pivot=atlas.center,
        disp=None,
        box_lo=np.zeros(3),
        vent_center=atlas.ventricle_center,
        vent_gain=float(vent_gain),
        vent_sigma=22.0,
    )
    return warp, float(sulcal), float(disp_mm)


def _output_box(warp: Warp, atlas: Atlas, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The output box that holds the template's brain under `warp` (corners mapped back, + margin)."""
    corners = np.array(
        [[s.start if (k >> i) & 1 else s.stop for i, s in enumerate(atlas.box)] for k in range(8)], dtype=np.float64
    )
    inv = np.linalg.inv(warp.matrix)
    out = [(inv @ (c - warp.pivot - warp.offset) + warp.pivot + 0.5) / warp.spacing - 0.5 for c in corners]
    out_arr = np.array(out)
    margin = 6.0 / warp.spacing
    lo = np.maximum(np.floor(out_arr.min(0) - margin), 0).astype(int)
    hi = np.minimum(np.ceil(out_arr.max(0) + margin) + 1, shape).astype(int)
    return slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2]))


def make_brain(
    rng: np.random.Generator, shape: tuple[int, int, int], age_years: float, push: Push | None = None
) -> Brain:
    """One case's anatomy on an output grid of `shape`; ventricles and sulci widen with age, and a
    lesion's `push` moves the tissue around it (the same brain without it when `push` is None: the
    random draws do not depend on it)."""
    atlas = load_atlas()
    warp, sulcal, disp_mm = _draw_warp(rng, shape, age_years, atlas)
    box = _output_box(warp, atlas, shape)
    bshape = tuple(s.stop - s.start for s in box)
    full = np.array(shape)

    def cells(c: tuple[int, int, int]) -> tuple[int, ...]:  # as many per mm as over the full volume
        return tuple(max(3, int(round(k * n / f))) for k, n, f in zip(c, bshape, full))

    disp = np.stack([smooth_field(rng, bshape, cells((7, 7, 5))) for _ in range(3)]) * np.float32(disp_mm)
    lo = np.array([s.start for s in box], dtype=np.float64)
    warp = Warp(**{**warp.__dict__, "disp": disp, "box_lo": lo})
    wmh_seeds = _wmh_seeds(rng, atlas)
    lesion_center = None
    if push is not None:
        push_idx = warp.to_output(push.center)
        warp = Warp(**{**warp.__dict__, "push": push, "push_mm": (push_idx + 0.5) * warp.spacing - 0.5})
        lesion_center = push_idx - lo
    # every box voxel's template position, in blocks of x (bounded memory)
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) for s in box[1:]], indexing="ij")
    yz = np.stack([g.ravel() for g in grids])
    csf = np.empty(bshape, dtype=np.float32)
    gm = np.empty(bshape, dtype=np.float32)
    wm = np.empty(bshape, dtype=np.float32)
    region = np.empty(bshape, dtype=np.uint8)
    alo = np.array([s.start for s in atlas.box], dtype=np.float32)[:, None]
    step = max(1, 600_000 // yz.shape[1])
    for x0 in range(0, bshape[0], step):
        x1 = min(bshape[0], x0 + step)
        xs = np.repeat(np.arange(box[0].start + x0, box[0].start + x1, dtype=np.float32), yz.shape[1])
        idx = np.vstack([xs, np.tile(yz, (1, x1 - x0))])
        d = disp[:, x0:x1].reshape(3, -1)
        coords = warp.to_template(idx, d) - alo
        n = (x1 - x0,) + bshape[1:]
        for src, dst in ((atlas.csf, csf), (atlas.gm, gm), (atlas.wm, wm)):
            dst[x0:x1] = ndimage.map_coordinates(src, coords, order=1, output=np.float32, cval=0.0).reshape(n)
        region[x0:x1] = ndimage.map_coordinates(atlas.region, coords, order=0, cval=0).reshape(n)
    total = csf + gm + wm
    inside = total > 127.5
    scale = np.where(inside, 1.0 / np.maximum(total, 1.0), 0.0).astype(np.float32)
    csf *= scale
    gm *= scale
    wm *= scale
    if sulcal > 0:  # older: sulci widen (more CSF where the cortex already has some)
        cortex = inside & (region != VENTRICLE) & (region != DEEP_GREY)
        grown = np.where(cortex, np.minimum(1.0, csf * (1.0 + 1.5 * sulcal) + 0.25 * sulcal * csf**0.5 * gm), csf)
        rest = np.where(gm + wm > 0, (1.0 - grown) / np.maximum(gm + wm, 1e-6), 0.0)
        gm *= rest
        wm *= rest
        csf = grown.astype(np.float32)
    tissue = np.zeros(bshape, dtype=np.uint8)
    stack = np.stack([csf, gm, wm])
    tissue[inside] = 1 + np.argmax(stack[:, inside], axis=0).astype(np.uint8)
    region[~inside] = 0
    vessels = ((region == PLEXUS) | (region == SINUS)) & inside
    wmh = _wmh_candidates(wmh_seeds, warp, box, tissue, float(warp.spacing[0]))
    return Brain(
        tissue=tissue,
        csf=csf,
        gm=gm,
        wm=wm,
        region=region,
        box=box,
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        warp=warp,
        wmh=wmh,
        wmh_age=float(np.clip((age_years - 35.0) / 45.0, 0.0, 1.0)),
        vessels=vessels,
        lesion_center=lesion_center,
    )


@functools.lru_cache(maxsize=1)
def _wmh_pools() -> tuple[np.ndarray, np.ndarray]:
    """Template voxels where white-matter hyperintensities sit: periventricular caps and deep white matter."""
    atlas = load_atlas()
    lo = np.array([s.start for s in atlas.box])
    peri = np.argwhere(atlas.region == PERIVENTRICULAR)[::7] + lo
    deep = np.argwhere((atlas.wm > 200) & (atlas.depth > 12) & (atlas.region == 0))[::23] + lo
    return peri, deep


def _wmh_seeds(rng: np.random.Generator, atlas: Atlas) -> list[tuple[np.ndarray, float]]:
    """WMH_CANDIDATES (template voxel, radius mm) pairs, 1.5-5 mm (periventricular ones larger)."""
    peri, deep = _wmh_pools()
    seeds = []
    for _ in range(WMH_CANDIDATES):
        periventricular = rng.random() < 0.5
        pool = peri if periventricular else deep
        c = pool[int(rng.integers(len(pool)))].astype(np.float64)
        r = rng.uniform(1.5, 4.5) * (1.25 if periventricular else 1.0)
        seeds.append((c, float(r)))
    return seeds


def _wmh_candidates(
    seeds: list[tuple[np.ndarray, float]], warp: Warp, box: tuple[slice, ...], tissue: np.ndarray, mm: float
) -> np.ndarray:
    """Ranked candidate white-matter hyperintensities painted as balls in white matter only."""
    out = np.zeros(tissue.shape, dtype=np.uint8)
    lo_box = np.array([s.start for s in box], dtype=np.float64)
    for k, (seed, r_mm) in enumerate(seeds, start=1):
        c = warp.to_output(seed) - lo_box
        r = r_mm / mm
        lo = np.maximum(np.floor(c - r) - 1, 0).astype(int)
        hi = np.minimum(np.ceil(c + r) + 2, tissue.shape).astype(int)
        if np.any(hi <= lo):
            continue
        sub_box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        g = np.ogrid[sub_box]
        ball = sum((gi - ci) ** 2 for gi, ci in zip(g, c)) <= r * r
        sub = out[sub_box]
        sub[ball & (tissue[sub_box] == WM) & (sub == 0)] = k
    return out
