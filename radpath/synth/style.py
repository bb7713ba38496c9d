"""Named randomisation ranges ("styles") of the synthetic generator, in the spirit of SynthSeg.

Every case draws its own appearance from the ranges of one `Style`: how conspicuous the tumour is
(the FLAIR and T2 robust z-score the generator realises), the tissue contrasts (a protocol family
plus per-tissue jitter), noise, bias field, blur and slice thickness, lesion size, shape and texture,
how often each radiological sign appears, and the file-format quirks (dtype, intensity scale,
negative values, exactly-zero or near-zero background, z-scored files). A model trained on one
style and tested on another (`train` vs `heldout`) shows whether it learned the signs or the look.

A range is `(lo, hi)`, drawn uniformly per case (`flair_z`, `t2_z` and the scales log-uniformly,
so the subtle end is as well covered as the conspicuous one); `lo == hi` pins a
value (e.g. `dataclasses.replace(STYLES["broad"], flair_z=(1.5, 1.5))`). A sign prevalence range
`(lo, hi)` draws the case's probability, then the sign: the sign's overall rate is the mean.
Choices (`families`, `dtypes`, `backgrounds`) are `(name, weight)` pairs.

Measured reference points (../shared/DATA.md, real BraTS-preprocessed cases): tumour FLAIR robust z
median about 2.6-2.9 (90th percentile 4-5), T2 1-2.3; lower-grade gliomas often subtler; published
range about 1.5 to 8.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from radpath.contract.errors import RadPathError

Range = tuple[float, float]
Choice = tuple[tuple[str, float], ...]


class SynthSettingsError(RadPathError, ValueError):
    """A generator setting is impossible (unknown style, empty range, no cases, tiny shape)."""


# Relative intensity of (CSF, GM, WM) per sequence (flair, t1, t1ce, t2); white matter T1 = 1.
# Loosely after published relaxation times at 1.5 T / 3 T and common protocol variants; a case
# draws one family and jitters every entry, so no fixed contrast can identify "normal tissue".
CONTRAST_FAMILIES: dict[str, np.ndarray] = {
    # 2-D spin echo at 1.5 T: the generator's original look
    "se_1.5t": np.array([[0.13, 0.58, 0.50], [0.30, 0.75, 1.00], [0.32, 0.78, 1.00], [1.30, 0.62, 0.45]]),
    # 3 T with a 3-D gradient-echo T1 (strong GM/WM contrast), bright T2 CSF
    "mprage_3t": np.array([[0.10, 0.62, 0.48], [0.18, 0.58, 1.00], [0.22, 0.62, 1.00], [1.60, 0.70, 0.48]]),
    # flat contrasts (low field, short TR)
    "low_contrast": np.array([[0.22, 0.54, 0.52], [0.42, 0.86, 1.00], [0.45, 0.88, 1.00], [1.05, 0.60, 0.50]]),
    # incomplete CSF suppression on FLAIR (3-D FLAIR, short TI)
    "flair_csf_bright": np.array([[0.40, 0.60, 0.52], [0.25, 0.68, 1.00], [0.30, 0.72, 1.00], [1.45, 0.66, 0.50]]),
    # grey matter darker than white matter on FLAIR, weak T2 CSF contrast
    "flair_gm_dark": np.array([[0.15, 0.47, 0.56], [0.35, 0.80, 1.00], [0.38, 0.82, 1.00], [1.15, 0.55, 0.42]]),
}

DTYPES = ("int16", "float32")
BACKGROUNDS = ("zero", "residue", "zscored")
"""zero: exactly 0 outside the brain (BraTS); residue: near-zero float residue and ringing from a
cubic resample (int16 files keep only the ringing's small integers at the brain's edge); zscored:
float, brain standardised to mean 0 and unit variance (half the brain negative), background 0."""


@dataclass(frozen=True)
class Style:
    """Ranges a case's appearance is drawn from (see the module docstring)."""

    name: str
    flair_z: Range = (1.5, 8.0)
    """median robust z of the whole lesion (labels 1, 2, 4) on FLAIR; brain median and IQR/1.349"""
    t2_z: Range = (0.5, 5.0)
    """the same on T2 (cerebrospinal fluid is bright on T2, so the brain's spread is wide)"""
    families: Choice = tuple((k, 1.0) for k in CONTRAST_FAMILIES)
    contrast_jitter: Range = (0.0, 0.15)
    """each (tissue, sequence) intensity times U(1 - j, 1 + j)"""
    tissue_texture: Range = (0.0, 0.06)
    """amplitude of slow intensity variation inside normal tissue"""
    wmh: Range = (0.0, 1.0)
    """white-matter hyperintensity load (small FLAIR/T2-bright foci that are not tumour; scaled by age)"""
    vessel_enhancement: Range = (1.0, 2.2)
    """T1ce of choroid plexus and sinus relative to their unenhanced value (normal enhancement that is
    not tumour; 1 = invisible)"""
    enhancement: Range = (1.2, 2.4)
    """T1ce of enhancing tumour relative to white matter"""
    lesion_t1: Range = (0.55, 0.9)
    """T1 (and unenhanced T1ce) of solid tumour relative to its class's reference value"""
    noise: Range = (0.01, 0.08)
    """noise standard deviation relative to the brain's median"""
    bias: Range = (0.0, 0.25)
    """bias field: log-amplitude of a smooth multiplicative field"""
    blur_mm: Range = (0.0, 1.2)
    """in-plane Gaussian sigma (mm)"""
    slice_mm: Range = (1.0, 6.0)
    """slice thickness (mm), drawn per sequence: anisotropic resolution resampled to 1 mm"""
    lesion_scale: Range = (0.75, 1.4)
    """lesion radius relative to the class's typical size"""
    irregularity: Range = (0.0, 0.35)
    texture: Range = (0.0, 0.25)
    """heterogeneity inside the lesion (relative amplitude of a smooth field)"""
    g_ring: Range = (0.8, 0.95)
    """G: ring enhancement around necrosis (otherwise a non-enhancing core); DATA.md: ~7/8"""
    g_midline: Range = (0.05, 0.2)
    """G: centred near the midline (oedema may cross it)"""
    a_mismatch: Range = (0.4, 0.55)
    """A: T2-FLAIR mismatch (FLAIR-dark centre, bright rim)"""
    a_enhancing: Range = (0.05, 0.2)
    """A: a small faint enhancing focus"""
    o_calcified: Range = (0.4, 0.8)
    o_frontal: Range = (0.5, 0.65)
    o_patchy: Range = (0.4, 0.6)
    """O: patchy faint enhancement"""
    other_mismatch: Range = (0.0, 0.04)
    """O and G: T2-FLAIR mismatch ("almost never")"""
    other_calcified: Range = (0.0, 0.1)
    """A and G: calcified foci"""
    dtypes: Choice = (("int16", 0.6), ("float32", 0.4))
    backgrounds: Choice = (("zero", 0.5), ("residue", 0.35), ("zscored", 0.15))
    scale: Range = (300.0, 6000.0)
    """int16 files: brain median, log-uniform per sequence (20x range as in real releases)"""
    float_scale: Range = (0.5, 6000.0)
    """float32 files (not z-scored): brain median, log-uniform per sequence"""
    negatives: Range = (0.0, 0.002)
    """fraction of brain voxels made slightly negative (bias-field correction does that)"""
    residue_shift: Range = (0.25, 0.5)
    """sub-voxel shift (voxels) of the cubic resample that makes the residue background"""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "Range":
                lo, hi = v
                if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                    raise SynthSettingsError(f"style {self.name!r}: {f.name}={v} is not a range (lo <= hi)")
        for name in (
            "g_ring",
            "g_midline",
            "a_mismatch",
            "a_enhancing",
            "o_calcified",
            "o_frontal",
            "o_patchy",
            "other_mismatch",
            "other_calcified",
        ):
            lo, hi = getattr(self, name)
            if lo < 0 or hi > 1:
                raise SynthSettingsError(f"style {self.name!r}: prevalence {name}={(lo, hi)} must lie in [0, 1]")
        for name, known in (("families", CONTRAST_FAMILIES), ("dtypes", DTYPES), ("backgrounds", BACKGROUNDS)):
            choice = getattr(self, name)
            unknown = [k for k, _ in choice if k not in known]
            if not choice or unknown or sum(w for _, w in choice) <= 0 or any(w < 0 for _, w in choice):
                raise SynthSettingsError(
                    f"style {self.name!r}: {name}={choice}: expected (name, weight >= 0) "
                    f"pairs with a positive total, names from {', '.join(known)}"
                )
        if self.scale[0] < 50:
            raise SynthSettingsError(
                f"style {self.name!r}: scale={self.scale}: int16 files need a brain "
                "median of at least 50 (rounding would erase the contrast)"
            )
        if self.float_scale[0] <= 0 or self.slice_mm[0] < 1 or self.blur_mm[0] < 0 or self.lesion_scale[0] <= 0:
            raise SynthSettingsError(
                f"style {self.name!r}: float_scale and lesion_scale must be > 0, slice_mm >= 1 and blur_mm >= 0"
            )


def _w(**weights: float) -> Choice:
    return tuple(weights.items())


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        # The whole space: the default of `radpath synth` and the demo.
        Style("broad"),
        # Two disjoint-ish parts of the space for a cross-style benchmark: train on `train`, test on
        # `heldout` (other contrast families, subtler and smaller tumours, blurrier thicker slices, more
        # noise and bias, and mostly the file quirks `train` rarely or never shows).
        Style(
            "train",
            flair_z=(2.5, 8.0),
            t2_z=(1.5, 5.0),
            families=_w(**{"se_1.5t": 1.0, "mprage_3t": 1.0, "low_contrast": 1.0}),
            contrast_jitter=(0.0, 0.1),
            noise=(0.01, 0.05),
            bias=(0.0, 0.15),
            blur_mm=(0.0, 0.7),
            slice_mm=(1.0, 3.0),
            lesion_scale=(0.85, 1.4),
            dtypes=_w(int16=0.85, float32=0.15),
            backgrounds=_w(zero=0.85, residue=0.15, zscored=0.0),
        ),
        Style(
            "heldout",
            flair_z=(1.5, 3.0),
            t2_z=(0.5, 2.5),
            families=_w(flair_csf_bright=1.0, flair_gm_dark=1.0),
            contrast_jitter=(0.05, 0.15),
            noise=(0.03, 0.08),
            bias=(0.1, 0.3),
            blur_mm=(0.5, 1.2),
            slice_mm=(3.0, 6.0),
            lesion_scale=(0.65, 1.25),
            dtypes=_w(int16=0.4, float32=0.6),
            backgrounds=_w(zero=0.2, residue=0.5, zscored=0.3),
        ),
        # The whole space in the release's own file format (BraTS-preprocessed: int16, background exactly
        # 0), as in every CPM-RadPath case: for tests that need clean files but realistic tumours.
        Style("brats", dtypes=_w(int16=1.0), backgrounds=_w(zero=1.0), negatives=(0.0002, 0.002)),
        # The subtle end of the space (what lower-grade gliomas and other FLAIR protocols look like).
        Style("subtle", flair_z=(1.5, 2.5), t2_z=(0.5, 2.5)),
        # The generator's look before version 2 (conspicuous tumours, one contrast family, clean int16
        # files with an exactly-zero background): for comparisons only.
        Style(
            "legacy",
            flair_z=(5.5, 8.0),
            t2_z=(2.5, 4.5),
            families=_w(**{"se_1.5t": 1.0}),
            contrast_jitter=(0.05, 0.05),
            tissue_texture=(0.0, 0.0),
            wmh=(0.0, 0.0),
            vessel_enhancement=(1.0, 1.0),
            enhancement=(1.6, 2.0),
            lesion_t1=(0.9, 1.0),
            noise=(0.015, 0.04),
            bias=(0.06, 0.06),
            blur_mm=(0.0, 0.0),
            slice_mm=(1.0, 1.0),
            lesion_scale=(0.9, 0.9),
            irregularity=(0.05, 0.25),
            texture=(0.03, 0.12),
            g_ring=(0.875, 0.875),
            g_midline=(0.0, 0.0),
            a_mismatch=(0.47, 0.47),
            a_enhancing=(0.1, 0.1),
            o_calcified=(0.6, 0.6),
            o_frontal=(0.6, 0.6),
            o_patchy=(0.5, 0.5),
            other_mismatch=(0.0, 0.0),
            other_calcified=(0.0, 0.0),
            dtypes=_w(int16=1.0),
            backgrounds=_w(zero=1.0),
            negatives=(0.00033, 0.00033),
        ),
    )
}


def get_style(style: Style | str) -> Style:
    """A `Style` by value or by name; an unknown name lists the known ones."""
    if isinstance(style, Style):
        return style
    if style not in STYLES:
        raise SynthSettingsError(f"unknown style {style!r}; known styles: {', '.join(STYLES)}")
    return STYLES[style]


def draw_range(rng: np.random.Generator, r: Range, log: bool = False) -> float:
    """One value of `r`; always consumes one random number, so pinning a range (lo == hi) leaves
    every other draw of the case unchanged."""
    u = rng.random()
    lo, hi = float(r[0]), float(r[1])
    if log:
        return float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
    return lo + u * (hi - lo)


def draw_choice(rng: np.random.Generator, choice: Choice) -> str:
    names = [k for k, _ in choice]
    w = np.array([wt for _, wt in choice], dtype=np.float64)
    return str(names[int(rng.choice(len(names), p=w / w.sum()))])


def draw_sign(rng: np.random.Generator, prevalence: Range) -> bool:
    return bool(rng.random() < draw_range(rng, prevalence))
