"""Turn tissue labels and a lesion into four MRI-like volumes with the case's drawn appearance.

Order of the simulated acquisition, per sequence: tissue contrast (a protocol family, jittered) and a
slow tissue texture -> lesion -> partial-volume blur (in-plane Gaussian, thick slices along z) ->
bias field -> noise -> skull strip. The lesion's FLAIR and T2 levels are solved for, so that after
blur, bias and noise the lesion's median robust z-score (brain median, IQR / 1.349) is the drawn
conspicuity: the image is linear in the lesion amplitude a (F = F0 + a G), so a few secant steps on
a brain subsample find it. Then the file quirks (scale, dtype, negatives, outliers, background).

All arrays here cover the brain's bounding box only (`Brain.box`); `to_full` pastes them back.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import Brain
from .fields import smooth_field
from .style import CONTRAST_FAMILIES, Style, draw_choice, draw_range
from .tumors import Tumor

SEQ_ORDER = ("flair", "t1", "t1ce", "t2")
SOLVED = ("flair", "t2")
"""Sequences whose lesion level is solved for a drawn robust z (the others are relative values)."""
BRAIN_SAMPLE = 250_000
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
    d["noise"] = draw_range(rng, style.noise)
    d["bias"] = draw_range(rng, style.bias)
    d["blur_mm"] = draw_range(rng, style.blur_mm)
    d["slice_mm"] = [draw_range(rng, style.slice_mm) for _ in SEQ_ORDER]
    d["flair_z"] = draw_range(rng, style.flair_z)
    d["t2_z"] = draw_range(rng, style.t2_z)
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


def _blur(x: np.ndarray, sigma_xy: float, sigma_z: float) -> np.ndarray:
    if sigma_xy > 0.3:
        x = ndimage.gaussian_filter1d(x, sigma_xy, axis=0, truncate=3.0)
        x = ndimage.gaussian_filter1d(x, sigma_xy, axis=1, truncate=3.0)
    if sigma_z > 0.3:
        x = ndimage.gaussian_filter1d(x, sigma_z, axis=2, truncate=3.0)
    return x


def _grow(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, shape))


def _solve_amplitude(f0: tuple[np.ndarray, np.ndarray], g: tuple[np.ndarray, np.ndarray], target: float) -> float:
    """a such that the median robust z of the lesion in F0 + a G is `target`. f0 and g hold
    (brain-sample values, lesion values). Bracket, then regula falsi (Illinois): the problem is
    nearly linear, so a handful of evaluations; monotone in a for any lesion whose median voxel is
    brighter with a, which the excess patterns guarantee."""
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
    hi, f_hi = direction * step, z(direction * step)
    for _ in range(8):  # expand until the target is bracketed
        if np.sign(f_hi) != np.sign(f_lo):
            break
        lo, f_lo = hi, f_hi
        hi *= 2.0
        f_hi = z(hi)
    else:
        return hi  # unreachable level (e.g. a lesion too small to be seen); the realised value says so
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
    texture = 1.0 + d["tissue_texture"] * smooth_field(rng, shape, tuple(max(3, n // 10) for n in shape))
    # one coil, one bias field for the four sequences
    bias = np.exp(d["bias"] * smooth_field(rng, shape, (4, 4, 3)))
    outside = ~inside
    noise_std = rng.standard_normal  # drawn per sequence below, in a fixed order
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
        sigma_z = 0.35 * d["slice_mm"][s] * unit_z if d["slice_mm"][s] > 1.0 else 0.0
        img = np.take(table[s], brain.tissue)
        img *= texture
        wm = float(table[s][3])
        ref = float(np.median(img.ravel()[sample]))
        g_full = None
        if les_idx.size:
            sub = img[tumor.box]
            les = tumor.seg > 0
            if name in SOLVED:
                sub[les] = ref
                margin = int(np.ceil(3 * max(sigma_xy, sigma_z))) + 1
                gbox = _grow(tumor.box, margin, shape)
                pattern = np.zeros(tuple(b.stop - b.start for b in gbox), dtype=np.float32)
                inner = tuple(slice(t.start - g.start, t.stop - g.start) for t, g in zip(tumor.box, gbox))
                pattern[inner] = getattr(tumor, name)
                g_full = np.zeros(shape, dtype=np.float32)
                g_full[gbox] = _blur(pattern, sigma_xy, sigma_z) * bias[gbox]
            else:
                sub[les] = getattr(tumor, name)[les] * wm
        img = _blur(img, sigma_xy, sigma_z) * bias
        noise = noise_std(in_idx.size, dtype=np.float32) * np.float32(d["noise"] * ref)
        img.ravel()[in_idx] += noise
        img[outside] = 0.0  # skull-stripped
        if resample is not None:  # a later cubic resample: ringing and residue outside the brain
            img = _cubic_shift(img, resample)
        if g_full is not None:
            g_full[outside] = 0.0
            if resample is not None:
                rbox = _grow(gbox, 8, shape)
                g_full[rbox] = _cubic_shift(g_full[rbox], resample)
            target = d[f"{name}_z"]
            a = _solve_amplitude((img.ravel()[sample], img.ravel()[les_idx]),
                                 (g_full.ravel()[sample], g_full.ravel()[les_idx]), target)
            img += np.float32(a) * g_full
        out[name] = img
    return out


def _cubic_shift(x: np.ndarray, shifts: list[float]) -> np.ndarray:
    """Resample at a sub-voxel offset with cubic B-splines, axis by axis (what a cubic resample of
    a skull-stripped image does: negative ringing at the edge, decaying near-zero residue beyond)."""
    def bspline(t: float) -> float:
        t = abs(t)
        return 2 / 3 - t * t + t ** 3 / 2 if t < 1 else (2 - t) ** 3 / 6 if t < 2 else 0.0

    for axis, delta in enumerate(shifts):
        coef = ndimage.spline_filter1d(x, order=3, axis=axis, output=np.float32, mode="mirror")
        frac = delta - np.floor(delta)
        w = [0.0, bspline(1 + frac), bspline(frac), bspline(1 - frac), bspline(2 - frac)]
        x = ndimage.correlate1d(coef, w, axis=axis, mode="constant", cval=0.0)
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
            out[name] = img.astype(np.float32)
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
        out[name] = img.astype(np.float32) if d["dtype"] == "float32" else img
    return out


def to_full(rng: np.random.Generator, crop: np.ndarray, brain: Brain, d: dict) -> np.ndarray:
    """The full volume: the brain box pasted into a background of zeros, or, for a float residue
    background, of tiny values (float arithmetic residue of a resample, as in real resampled files)."""
    full = np.zeros(brain.shape, dtype=crop.dtype)
    if d["background"] == "residue" and crop.dtype == np.float32:
        x, _, z = brain.shape
        mag = 10.0 ** rng.uniform(-40, -20, (x, 1, z)) * np.sign(rng.uniform(-1, 1, (x, 1, z))) * d["scale"][0]
        full[...] = mag.astype(np.float32)
    else:
        rng.uniform(size=2 * brain.shape[0] * brain.shape[2])  # same stream whatever the kind
    full[brain.box] = crop
    return full
