"""Turn tissue fractions and a lesion into four MRI-like volumes with the case's drawn appearance.

Order of the simulated acquisition, per sequence: tissue contrast (a protocol family, jittered; white-
matter hyperintensities and normal T1ce enhancement that are not tumour) and a slow tissue texture ->
lesion -> partial-volume blur (in-plane Gaussian, thick slices' box profile along z) -> bias field ->
noise -> skull strip -> (residue background only) a cubic sub-voxel resample. The lesion's FLAIR and
T2 levels are solved for, so that after all of that the lesion's median robust z-score (brain median,
IQR / 1.349, true brain mask) is the drawn conspicuity: the image is linear in the lesion amplitude a
(F = F0 + a G), so a few regula falsi steps on a brain subsample find it. Then the file quirks
(scale, dtype, negatives, outliers, background).

All arrays here cover the brain's bounding box only (`Brain.box`); `to_full` pastes them back.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import DEEP_GREY, WMH_CANDIDATES, Brain
from .fields import smooth_field
from .style import CONTRAST_FAMILIES, Style, draw_choice, draw_range
from .tumors import Tumor

SEQ_ORDER = ("flair", "t1", "t1ce", "t2")
SOLVED = ("flair", "t2")
"""Sequences whose lesion level is solved for a drawn robust z (the others are relative values)."""
BRAIN_SAMPLE = 100_000
"""Brain voxels used for the robust statistics while solving (exact statistics at the end)."""


def robust_z_median(img: np.ndarray, brain: np.ndarray, lesion: np.ndarray) -> float:
    """Median over `lesion` of (img - brain median) / (brain IQR / 1.349); NaN without a lesion."""
    if not lesion.any():
        return float("nan")
    b = img[brain].astype(np.float64)
    q25, med, q75 = np.percentile(b, [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if scale <= 0:
        return float("nan")
    return float(np.median((img[lesion].astype(np.float64) - med) / scale))


def draw_appearance(rng: np.random.Generator, style: Style) -> dict:
    """Every scalar appearance value of a case, with a fixed number of draws (pinning one range
    leaves the others unchanged)."""
    d = {"family": draw_choice(rng, style.families)}
    d["jitter"] = draw_range(rng, style.contrast_jitter)
    d["jitter_u"] = rng.uniform(-1.0, 1.0, (4, 3))
    d["tissue_texture"] = draw_range(rng, style.tissue_texture)
    d["wmh"] = draw_range(rng, style.wmh)
    d["wmh_gain"] = rng.uniform([1.4, 0.8, 0.8, 1.6], [1.9, 0.95, 0.95, 2.3])  # x white matter, per sequence
    d["vessel_enhancement"] = draw_range(rng, style.vessel_enhancement)
    d["noise"] = draw_range(rng, style.noise)
    d["bias"] = draw_range(rng, style.bias)
    d["blur_mm"] = draw_range(rng, style.blur_mm)
    d["slice_mm"] = [draw_range(rng, style.slice_mm) for _ in SEQ_ORDER]
    # log-uniform: as many cases between 1.5 and 3 as between 4 and 8 (the subtle end is where real
    # tumours sit: DATA.md's real medians are 2.6-2.9)
    d["flair_z"] = draw_range(rng, style.flair_z, log=style.flair_z[0] > 0)
    d["t2_z"] = draw_range(rng, style.t2_z, log=style.t2_z[0] > 0)
    d["dtype"] = draw_choice(rng, style.dtypes)
    d["background"] = draw_choice(rng, style.backgrounds)
    if d["background"] == "zscored":
        d["dtype"] = "float32"
    int_scale = [draw_range(rng, style.scale, log=True) for _ in SEQ_ORDER]
    float_scale = [draw_range(rng, style.float_scale, log=True) for _ in SEQ_ORDER]
    d["scale"] = int_scale if d["dtype"] == "int16" else float_scale
    d["negatives"] = draw_range(rng, style.negatives)
    d["residue_shift"] = [draw_range(rng, style.residue_shift) * rng.choice([-1.0, 1.0]) for _ in range(3)]
    return d


def contrast(d: dict) -> np.ndarray:
    """[sequence, tissue] relative intensities (tissue 0 = background) of the drawn family, jittered."""
    table = CONTRAST_FAMILIES[d["family"]] * (1.0 + d["jitter"] * d["jitter_u"])
    return np.concatenate([np.zeros((4, 1)), table], axis=1).astype(np.float32)


def tissue_images(brain: Brain, table: np.ndarray) -> np.ndarray:
    """float32 [sequence, box] partial-volume images: each voxel's CSF, grey and white-matter
    fractions times each sequence's values (`table` [sequence, (background, CSF, GM, WM)]); deep grey
    nuclei sit halfway between grey and white matter (as on real T1 and T2). One matrix product."""
    deep = brain.region == DEEP_GREY
    gm_deep = np.where(deep, brain.gm, np.float32(0.0))
    basis = np.stack([brain.csf, brain.gm - gm_deep, gm_deep, brain.wm]).reshape(4, -1)
    values = np.stack([table[:, 1], table[:, 2], 0.5 * (table[:, 2] + table[:, 3]), table[:, 3]], axis=1)
    return (values.astype(np.float32) @ basis).reshape((len(table),) + brain.tissue.shape)


def _blur(x: np.ndarray, sigma_xy: float, slab: int) -> np.ndarray:
    """Partial volume: Gaussian in-plane point spread, and a thick slice's box profile of `slab`
    voxels (odd, so nothing shifts) along z, as after resampling thick slices to 1 mm."""
    if sigma_xy > 0.3:
        x = ndimage.gaussian_filter1d(x, sigma_xy, axis=0, truncate=2.5)
        x = ndimage.gaussian_filter1d(x, sigma_xy, axis=1, truncate=2.5)
    if slab > 1:
        x = ndimage.uniform_filter1d(x, slab, axis=2)
    return x


def _grow(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, shape))


def _solve_amplitude(
    f0: tuple[np.ndarray, np.ndarray], g: tuple[np.ndarray, np.ndarray], target: float, cap: float
) -> float:
    """a such that the median robust z of the lesion in F0 + a G is `target`. f0 and g hold
    (brain-sample values, lesion values). Bracket, then regula falsi (Illinois): the problem is
    nearly linear, so a handful of evaluations; monotone in a for any lesion whose median voxel is
    brighter with a, which the excess patterns guarantee. |a| stays below `cap`: a lesion that is a
    large share of the brain moves the brain's own statistics and may never reach a high target;
    then it gets the capped level and the realised z says what it is."""
    bs0, le0 = f0
    bsg, leg = g

    def z(a: float) -> float:
        b = bs0 + a * bsg
        q25, med, q75 = np.percentile(b, [25, 50, 75])
        return float(np.median((le0 + a * leg - med) / max((q75 - q25) / 1.349, 1e-12))) - target

    q25, q75 = np.percentile(bs0, [25, 75])
    step = max(abs(target), 0.5) * max((q75 - q25) / 1.349, 1e-12) / max(float(np.median(leg)), 1e-3)
    lo, f_lo = 0.0, z(0.0)
    if f_lo == 0.0:
        return 0.0
    direction = 1.0 if f_lo < 0 else -1.0
    step = min(step, cap)
    hi, f_hi = direction * step, z(direction * step)
    while np.sign(f_hi) == np.sign(f_lo):  # expand until the target is bracketed
        if abs(hi) >= cap:
            return hi  # unreachable level; the realised value says so
        lo, f_lo = hi, f_hi
        hi = float(np.clip(hi * 2.0, -cap, cap))
        f_hi = z(hi)
    side = 0
    for _ in range(40):
        a = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        f = z(a)
        if abs(f) < 0.005:
            return a
        if np.sign(f) == np.sign(f_hi):
            hi, f_hi = a, f
            if side == 1:
                f_lo /= 2.0
            side = 1
        else:
            lo, f_lo = a, f
            if side == -1:
                f_hi /= 2.0
            side = -1
    return a


def render(rng: np.random.Generator, brain: Brain, tumor: Tumor | None, d: dict) -> dict[str, np.ndarray]:
    """float32 volumes over the brain box, intensities relative (not yet scaled); 0 outside the brain
    except for a residue background (the cubic resample's ringing and residue)."""
    shape = brain.tissue.shape
    inside = brain.tissue > 0
    unit_xy = brain.shape[0] / 240.0
    unit_z = brain.shape[2] / 155.0
    table = contrast(d)
    n_wmh = int(round(WMH_CANDIDATES * brain.wmh_age * d["wmh"])) if brain.wmh is not None else 0
    shown = (brain.wmh > 0) & (brain.wmh <= n_wmh) if n_wmh and brain.wmh is not None else None
    d["wmh_voxels"] = int(shown.sum()) if shown is not None else 0
    images = tissue_images(brain, table)
    texture = 1.0 + d["tissue_texture"] * smooth_field(rng, shape, tuple(max(3, n // 10) for n in shape))
    # one coil, one bias field for the four sequences
    bias = np.exp(d["bias"] * smooth_field(rng, shape, (4, 4, 3)))
    outside = ~inside
    in_idx = np.flatnonzero(inside)
    sample = in_idx[:: max(1, in_idx.size // BRAIN_SAMPLE)]
    lesion = np.zeros(shape, dtype=bool)
    if tumor is not None:
        lesion[tumor.box] = tumor.seg > 0
    les_idx = np.flatnonzero(lesion)
    sigma_xy = d["blur_mm"] * unit_xy
    resample = d["residue_shift"] if d["background"] == "residue" else None
    out = {}
    for s, name in enumerate(SEQ_ORDER):
        slab = 2 * int(round((d["slice_mm"][s] * unit_z - 1.0) / 2.0)) + 1
        img = images[s]
        if shown is not None:
            img[shown] = np.float32(table[s][3] * d["wmh_gain"][s])
        if name == "t1ce" and brain.vessels is not None and d["vessel_enhancement"] != 1.0:
            img[brain.vessels] = np.float32(table[s][3] * d["vessel_enhancement"])  # x white matter
        img *= texture
        wm = float(table[s][3])
        ref = float(np.median(img.ravel()[sample]))
        g_full = None
        if les_idx.size:
            sub = img[tumor.box]
            les = tumor.seg > 0
            if name in SOLVED:
                sub[les] = ref
                margin = int(np.ceil(max(2.5 * sigma_xy, slab / 2.0))) + 1
                gbox = _grow(tumor.box, margin, shape)
                pattern = np.zeros(tuple(b.stop - b.start for b in gbox), dtype=np.float32)
                inner = tuple(slice(t.start - g.start, t.stop - g.start) for t, g in zip(tumor.box, gbox))
                pattern[inner] = getattr(tumor, name)
                g_full = np.zeros(shape, dtype=np.float32)
                g_full[gbox] = _blur(pattern, sigma_xy, slab) * bias[gbox]
            else:
                sub[les] = getattr(tumor, name)[les] * wm
        img = _blur(img, sigma_xy, slab) * bias
        noise = rng.standard_normal(in_idx.size, dtype=np.float32) * np.float32(d["noise"] * ref)
        img.ravel()[in_idx] += noise
        img[outside] = 0.0  # skull-stripped
        if resample is not None:  # a later cubic resample: ringing and residue outside the brain
            img = _cubic_shift(img, resample)
            # keep the ringing near the brain; the far residue (< 1e-4 of the brain) is replaced in
            # `to_full` by a low-entropy one of the same magnitude, else gzip takes seconds per file
            img[outside & (np.abs(img) < np.float32(1e-4 * ref))] = 0.0
        if g_full is not None:
            g_full[outside] = 0.0
            if resample is not None:
                rbox = _grow(gbox, 8, shape)
                g_full[rbox] = _cubic_shift(g_full[rbox], resample)
            target = d[f"{name}_z"]
            leg = g_full.ravel()[les_idx]
            cap = (
                3.0
                * ref
                * float(np.median(bias))
                / max(float(np.median(leg[leg > 0])) if (leg > 0).any() else 1.0, 1e-6)
            )
            a = _solve_amplitude(
                (img.ravel()[sample], img.ravel()[les_idx]), (g_full.ravel()[sample], leg), target, cap
            )
            img += np.float32(a) * g_full
        out[name] = img
    return out


def _cardinal_cubic(t: np.ndarray) -> np.ndarray:
    """Interpolation kernel of cubic B-spline interpolation (prefilter included): sum_k c_k beta3(t - k)
    with c_k = sqrt(3) z^|k|, z = sqrt(3) - 2 (the inverse of the B-spline's (1, 4, 1) / 6 sampling)."""
    z = np.sqrt(3.0) - 2.0
    k = np.arange(-24, 25)
    c = np.sqrt(3.0) * z ** np.abs(k)
    x = np.abs(t[:, None] - k[None, :])
    beta = np.where(x < 1, 2 / 3 - x**2 + x**3 / 2, np.where(x < 2, (2 - x) ** 3 / 6, 0.0))
    return (beta * c).sum(axis=1)


def _cubic_shift(x: np.ndarray, shifts: list[float], taps: int = 7) -> np.ndarray:
    """Resample at a sub-voxel offset with cubic B-splines, axis by axis (what a cubic resample of
    a skull-stripped image does: negative ringing at the edge, decaying near-zero residue beyond).
    One FIR pass per axis: the kernel decays as 0.268^|k|, so 2 * 7 + 1 taps leave < 1e-4 out."""
    j = np.arange(-taps, taps + 1)
    for axis, delta in enumerate(shifts):
        weights = _cardinal_cubic(delta - j).astype(np.float32)
        x = ndimage.correlate1d(x, weights, axis=axis, mode="constant", cval=0.0)
    return x


def _edge(inside: np.ndarray) -> np.ndarray:
    """bool: brain voxels with a background neighbour along an axis."""
    interior = inside.copy()
    for axis in range(3):
        for step in (1, -1):
            interior &= np.roll(inside, step, axis=axis)
    return inside & ~interior


def write_quirks(rng: np.random.Generator, vols: dict[str, np.ndarray], brain: Brain, d: dict) -> dict[str, np.ndarray]:
    """Scale, outliers, negatives, background kind and dtype; returns the brain-box arrays."""
    inside = brain.tissue > 0
    in_idx = np.flatnonzero(inside)
    edge_idx = np.flatnonzero(_edge(inside))
    size = in_idx.size / 1.5e6  # relative to a full-size brain
    out = {}
    for s, name in enumerate(SEQ_ORDER):
        img = vols[name]
        flat = img.reshape(-1)
        # drawn for every kind, so the stream is the same whatever the quirks
        outliers = rng.choice(in_idx, max(3, int(30 * size)))
        outlier_gain = rng.uniform(2, 5, outliers.size).astype(np.float32)
        negatives = rng.choice(in_idx, int(round(d["negatives"] * in_idx.size)))
        negative_depth = rng.uniform(0.0002, 0.02, negatives.size).astype(np.float32)
        dropped = rng.choice(edge_idx, min(edge_idx.size, max(10, int(300 * size))), replace=False)
        brain_vals = flat[in_idx]
        if d["background"] == "zscored":
            img = (img - np.float32(brain_vals.mean())) / np.float32(brain_vals.std())
            img[~inside] = 0.0
            flat = img.reshape(-1)
            flat[dropped] = 0.0
            out[name] = _coarse_mantissa(img)
            continue
        scale = d["scale"][s]
        img *= np.float32(scale / max(float(np.median(brain_vals)), 1e-12))
        flat = img.reshape(-1)
        p995 = np.percentile(flat[in_idx[:: max(1, in_idx.size // 200_000)]], 99.5)
        flat[outliers] = p995 * outlier_gain
        flat[negatives] = -negative_depth * np.float32(scale)
        if d["background"] != "residue":  # (the residue's resample happened in `render`)
            flat[dropped] = 0.0  # the four sequences' masks differ by a few hundred voxels
        if d["dtype"] == "int16":
            img = np.clip(np.rint(img), -32768, 32767).astype(np.int16)
            if d["background"] == "zero":
                keep = inside.copy()
                keep.reshape(-1)[dropped] = False
                img[keep & (img == 0)] = 1  # the brain is non-zero
        out[name] = _coarse_mantissa(img) if d["dtype"] == "float32" else img
    return out


def _coarse_mantissa(x: np.ndarray, bits: int = 10) -> np.ndarray:
    """float32 with `bits` mantissa bits (relative precision 2^-10, far below any MRI noise): the
    files compress to a fraction of full-entropy floats, which keeps generation fast."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.view(np.uint32)[...] &= np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return x


def to_full(rng: np.random.Generator, crop: np.ndarray, brain: Brain, d: dict) -> np.ndarray:
    """The full volume: the brain box pasted into a background of zeros, or, for a float residue
    background, of tiny values (float arithmetic residue of a resample, as in real resampled files)."""
    full = np.zeros(brain.shape, dtype=crop.dtype)
    x, _, z = brain.shape
    residue = (10.0 ** rng.uniform(-40, -12, (x, 1, z)) * np.sign(rng.uniform(-1, 1, (x, 1, z)))).astype(np.float32)
    if d["background"] == "residue" and crop.dtype == np.float32:
        # tiny values everywhere but a few lines (constant along y, so the file compresses)
        residue[rng.random((x, 1, z)) < 0.2] = 0.0
        full[...] = _coarse_mantissa(residue * np.float32(d["scale"][0]))
        box = full[brain.box]
        keep = crop != 0
        box[keep] = crop[keep]
    else:
        rng.random((x, 1, z))  # same stream whatever the kind
        full[brain.box] = crop
    return full
