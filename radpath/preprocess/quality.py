"""Input quality checks: is this case what the model was trained on (BraTS-preprocessed, sequences in
their slots)? Warnings, never rejections: the case is still classified, the warning travels with the
answer (see `preprocess.findings`).

Every check is judged from the case itself, scale-free (percentiles and ranks of each sequence, never
a fixed intensity), on a coarse grid so a full 240 x 240 x 155 case costs a few tens of milliseconds:

- `resampled`: the voxel size (read from the affine, not the header's pixdim) is not 1 mm, or the
  voxels carry interpolation residue: a background that is near zero but not zero in a large part
  of the volume, or (float data with fractional values) negative ringing; data that is signed by
  design (z-scored: a fifth or more of the voxels negative) is not ringing. A field of view other
  than 240 x 240 x 155 is only mentioned in that message: a 1 mm case on another grid is not
  warned about for its size alone.
- `not-skull-stripped`: much signal outside a brain-shaped mask. Four signs, any one suffices: a
  shell of signal separated from the brain (scalp beyond a dark skull: what an erosion splits off
  the brain and the dilation of the brain does not reach back), a dark layer enclosed by signal
  (the skull between brain and scalp, seen as holes in axial slices), an outer surface that is
  bright on T1 (scalp fat; a stripped brain's surface is CSF and grey matter, dark on T1, whatever
  the skull looks like), or signal covering a large part of a face of the field of view (the neck,
  a head cut by the field of view).
- `swap-flair-t2`: CSF is the brightest tissue on T2 and among the darkest on FLAIR (fluid
  attenuated), while nothing is bright on FLAIR and dark on T2 (oedema and tumour are bright on
  both). So the voxels "bright on the T2 slot, dark on the FLAIR slot" far outnumber those "bright on
  the FLAIR slot, dark on the T2 slot"; when the reverse holds clearly, the files are swapped.
- `swap-t1-t1ce`: T1ce is T1 after gadolinium; contrast only ever adds signal (vessels, choroid
  plexus, dura, the rim of an enhancing tumour), so voxels much brighter on T1ce than on T1 exist
  and the reverse barely does. Compared paired, voxel by voxel, as ranks (T1 and T1ce share their
  contrast otherwise, whatever the scanner scale), with isolated single voxels ignored (bright
  outliers are not enhancement). A case without any enhancement carries no evidence either way and
  gets no warning.

Each swap check is a vote count of "expected" against "reversed" voxels; it fires only when the
reversed ones outnumber the expected ones by `SWAP_RATIO` plus a minimum count, so a case with
little evidence stays silent. `quality_measures` returns the numbers behind every decision (the
benchmark prints them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .case import SEQUENCES, Case
from .findings import CODES, QualityWarning
from .normalize import grid_step

log = logging.getLogger(__name__)

BRATS_SHAPE = (240, 240, 155)
"""The BraTS grid (SRI24 space, 1 mm): mentioned in the `resampled` message, never a warning alone."""
VOXEL_MM_TOLERANCE = 0.02
"""Largest deviation (mm) of any voxel edge from 1 mm still counted as the BraTS grid."""

LEVEL_PERCENTILE = 98
"""A sequence's signal level: this percentile of its non-zero magnitudes (bright tissue, robust to
the bright outliers far above the 99.5th percentile)."""
FOREGROUND_FRACTION = 0.05
"""Signal above this fraction of the level counts as foreground (tissue); interpolation residue and
background noise stay below it, FLAIR-dark CSF (about 0.15 of the level) stays above."""
RESIDUE_FRACTION = 0.01
"""Non-zero values below this fraction of the level are interpolation residue, not tissue."""
RESIDUE_WARN = 0.02
"""Share of the volume that may hold residue before `resampled` is raised (BraTS: exactly 0; a few
slightly negative bias-corrected brain voxels measure well under 0.1 %)."""
RINGING_WARN = 0.02
"""Share of the non-zero voxels of fractional float data that may be negative by more than the
residue level before `resampled` is raised (interpolation ringing)."""
SIGNED_SHARE = 0.2
"""Data with more negative voxels than this share is signed by design (z-scored), not ringing."""

SHELL_EROSION = 2
"""Coarse voxels (3 mm each on BraTS volumes) eroded off the foreground to split a scalp from the
brain; the brain's core is then dilated back by one more."""
OUTSIDE_WARN = 0.08
"""Share of the foreground outside the brain-shaped core above which the scan is not skull-stripped
(clean brains: thin gyri trimmed by the opening, under 2 %)."""
HOLES_WARN = 0.08
"""Share of the axially hole-filled head that is an enclosed dark layer (skull) before warning."""
SHELL_RANK_WARN = 0.5
"""Median T1 rank of the foreground's outermost layer above which that layer is not a brain surface
(CSF and grey matter: 0.05-0.15 on synthetic styles, 0.11-0.25 on real cases) but scalp fat (0.8-0.9)."""
FACE_WARN = 0.15
"""Share of one face of the field of view covered by signal before warning (a BraTS brain never
touches a face; a neck cut by the bottom face covers a quarter of it)."""

CSF_Z = 1.0
"""FLAIR/T2: a voxel votes when it is this many robust SDs above the brain's median on one sequence
and as many below it on the other (CSF: +3..+8 on T2; -1.5..-6 on FLAIR, the least with incomplete
fluid suppression or thick slices). Measured: 1.0 separates best (ratio of votes >= 20 on 180
cases of the broad/train/heldout styles, >= 200 on the real cases); 2.0 loses CSF on thick-slice
FLAIR."""
ENHANCE_RANK = 0.5
"""T1/T1ce: a voxel enhances when its rank on one is this much above its rank on the other ..."""
ENHANCE_K = 5.0
"""... and its robust z-score difference exceeds this many robust SDs of all voxels' differences ..."""
ENHANCE_Z_MIN = 2.0
"""... and at least this many z units."""
ENHANCE_EDGE = 1
"""Coarse voxels at the brain's surface that do not vote: where one sequence has thicker slices its
edge is blurred into the background, so there it is darker than the other with no contrast agent
involved (measured: 77 reversed votes on a synthetic 5.7 mm T1ce beside a 4 mm T1, 3 after this;
the real cases keep 400-470 expected votes and 0 reversed)."""
SWAP_RATIO = 2.0
"""A swap is flagged when the reversed votes exceed SWAP_RATIO x the expected votes ..."""
SWAP_MIN_VOTES = {"flair_t2": 0.002, "t1_t1ce": 0.0001}
"""... plus this share of the foreground voxels (and at least `SWAP_MIN_COUNT`): no evidence, no
warning. CSF is 1-15 % of a brain (measured minimum 1.1 % of the foreground on 180 synthetic cases),
and a brain that is a third tumour can show a few dozen stray reversed votes; enhancement can be
0.01 % (a thin rim, a few vessels)."""
SWAP_MIN_COUNT = 10
MIN_FOREGROUND = 100
"""Fewest coarse foreground voxels the contrast checks need (the 8 mm real case has 4500)."""


@dataclass(frozen=True)
class QualityMeasures:
    """The numbers behind the quality warnings of one case (see the module docstring)."""

    shape: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    residue: float
    """Share of the volume holding near-zero but non-zero values (largest over the sequences)."""
    ringing: float
    """Share of non-zero voxels that are clearly negative, for fractional float data (else 0)."""
    outside: float
    """Share of the foreground outside the brain-shaped core."""
    holes: float
    """Share of the axially hole-filled foreground that is enclosed background (a dark shell)."""
    face: float
    """Largest share of one face of the field of view covered by foreground."""
    shell: float
    """Median T1 (and T1ce) rank, within the foreground, of the foreground's outermost voxels."""
    flair_t2: tuple[int, int]
    """(expected, reversed) votes: (bright T2 & dark FLAIR, bright FLAIR & dark T2) voxels."""
    t1_t1ce: tuple[int, int]
    """(expected, reversed) votes: voxels enhancing on the T1ce slot vs on the T1 slot."""
    foreground: int
    """Foreground voxels on the coarse grid (the base of the vote thresholds)."""
    step: int

    @property
    def on_1mm_grid(self) -> bool:
        return all(abs(z - 1.0) <= VOXEL_MM_TOLERANCE for z in self.voxel_mm)

    def swapped(self, check: str) -> bool:
        """Whether `check` ("flair_t2" or "t1_t1ce") finds the pair swapped (see `SWAP_RATIO`)."""
        votes: tuple[int, int] = getattr(self, check)
        expected, reversed_ = votes
        floor = max(SWAP_MIN_COUNT, SWAP_MIN_VOTES[check] * self.foreground)
        return reversed_ > SWAP_RATIO * expected + floor


def voxel_size_mm(affine: np.ndarray) -> tuple[float, float, float]:
    """Edge lengths of one voxel in mm: the column norms of the affine's 3x3 part."""
    x, y, z = (float(v) for v in np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0)))
    return x, y, z


def _level(values: np.ndarray) -> float:
    """The signal level of one sequence (see `LEVEL_PERCENTILE`), > 0."""
    sample = values[::4]
    mags = np.abs(sample[sample != 0])
    if mags.size == 0:
        return 1.0
    level = float(np.percentile(mags, LEVEL_PERCENTILE))
    return level if level > 0 else float(mags.max())


def _is_fractional(volume: np.ndarray, sample: np.ndarray) -> bool:
    """Float data whose values are not all whole numbers (integers stored as float are not resampled)."""
    return volume.dtype.kind == "f" and bool(np.any(sample != np.round(sample)))


def _rank(values: np.ndarray, bins: int = 2048) -> np.ndarray:
    """float32 ranks in [0, 1] of float32 `values`, to about 1/`bins`: a histogram between the 0.1th
    and 99.9th percentiles and its cumulative sum as a look-up table (tied values, common in integer
    data, share their mid rank). O(n): a sort costs 5-10x more."""
    lo, hi = np.percentile(values[::7], [0.1, 99.9])
    if not hi > lo:
        hi = lo + 1.0
    idx = ((values - np.float32(lo)) * np.float32(bins / (hi - lo))).astype(np.int32)
    np.clip(idx, 0, bins - 1, out=idx)
    counts = np.bincount(idx, minlength=bins)
    mid = (np.cumsum(counts) - counts / 2) / max(values.size, 1)
    return mid.astype(np.float32)[idx]


def _robust_z(values: np.ndarray) -> np.ndarray:
    q25, q50, q75 = np.percentile(values[::5], [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = float(values.std()) or 1.0
    return (values - np.float32(q50)) / np.float32(scale)


def _supported(mask: np.ndarray) -> np.ndarray:
    """`mask` without its isolated voxels: each kept voxel has a 26-neighbour in the mask.

    Candidates are sparse, so their neighbours are looked up by flat index (a 3x3x3 convolution of the
    whole grid costs 20x more)."""
    padded = np.pad(mask, 1)
    flat = padded.ravel()
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return mask
    sy, sz = padded.shape[1] * padded.shape[2], padded.shape[2]
    has = np.zeros(idx.size, dtype=bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                if dx or dy or dz:
                    has |= flat[idx + dx * sy + dy * sz + dz]
    out = np.zeros_like(flat)
    out[idx[has]] = True
    return out.reshape(padded.shape)[1:-1, 1:-1, 1:-1]


def _flair_t2_votes(flair: np.ndarray, t2: np.ndarray) -> tuple[int, int]:
    """(expected, reversed): voxels far above the brain on the T2 slot and far below it on the FLAIR
    slot (CSF), and the reverse. Robust z-scores, so "far" means the same on any scanner scale; both
    conditions at once, so white matter that is merely a little brighter on FLAIR and a little darker
    on T2 (some protocols) votes for neither."""
    zf, zt = _robust_z(flair), _robust_z(t2)
    expected = int(np.count_nonzero(np.minimum(zt, -zf) > CSF_Z))
    reversed_ = int(np.count_nonzero(np.minimum(zf, -zt) > CSF_Z))
    return expected, reversed_


def _enhancement_votes(
    t1: np.ndarray, t1ce: np.ndarray, r1: np.ndarray, rc: np.ndarray, fg: np.ndarray
) -> tuple[int, int]:
    """(expected, reversed): voxels that enhance on the T1ce slot relative to the T1 slot, and the reverse.

    "Enhances" = much higher rank (`ENHANCE_RANK`) and a robust z-score difference beyond
    `ENHANCE_K` robust SDs of the voxel-wise differences (at least `ENHANCE_Z_MIN`): the threshold
    follows how much the two sequences disagree everywhere (noise, different protocols), so a 3-D
    T1ce beside a 2-D T1 does not vote, while vessels and enhancing rims (z +5..+10) do.
    `t1`, `t1ce`: the foreground's values; `r1`, `rc`: their ranks; `fg`: the foreground mask."""
    dz = _robust_z(t1ce) - _robust_z(t1)
    q25, q50, q75 = np.percentile(dz[::3], [25, 50, 75])
    cut = max(ENHANCE_K * (q75 - q25) / 1.349, ENHANCE_Z_MIN)
    dz -= np.float32(q50)
    inner = ndimage.binary_erosion(fg, iterations=ENHANCE_EDGE)[fg]
    votes = []
    for select in (((rc - r1) > ENHANCE_RANK) & (dz > cut), ((r1 - rc) > ENHANCE_RANK) & (dz < -cut)):
        mask = np.zeros(fg.shape, dtype=bool)
        mask[fg] = select & inner
        votes.append(int(np.count_nonzero(_supported(mask))))
    return votes[0], votes[1]


def _axial_holes(mask: np.ndarray) -> np.ndarray:
    """Background regions of each axial slice that do not touch the slice's edge."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, 1, 1] = structure[1, :, 1] = True  # 4-connected within the slice, never across slices
    labels, n = ndimage.label(~mask, structure=structure)
    if n == 0:
        return np.zeros_like(mask)
    edge = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel()])
    outside = np.zeros(n + 1, dtype=bool)
    outside[np.unique(edge)] = True
    outside[0] = True
    holes: np.ndarray = ~outside[labels]
    return holes


def _skull_measures(fg: np.ndarray) -> tuple[float, float, float]:
    """(outside, holes, face) of the coarse foreground; see `QualityMeasures`."""
    total = int(fg.sum())
    if total == 0:
        return 0.0, 0.0, 0.0
    eroded = ndimage.binary_erosion(fg, iterations=SHELL_EROSION)
    labels, n = ndimage.label(eroded)
    if n == 0:
        outside = 0.0  # nothing thick enough to be a brain: no brain shape to compare with
    else:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        core = ndimage.binary_dilation(labels == int(sizes.argmax()), iterations=SHELL_EROSION + 1)
        outside = float(np.count_nonzero(fg & ~core)) / total
    holes = _axial_holes(fg)
    n_holes = int(holes.sum())
    hole_share = n_holes / (total + n_holes)
    faces = [fg[0], fg[-1], fg[:, 0], fg[:, -1], fg[:, :, 0], fg[:, :, -1]]
    face = max(float(f.mean()) for f in faces)
    return outside, hole_share, face


def quality_measures(case: Case) -> QualityMeasures:
    """Measure everything the quality warnings are decided on (coarse grid, a few tens of ms)."""
    step = grid_step(case.shape)  # 3 mm on BraTS volumes (1-in-27 voxels), as the rest of preprocessing
    grid = (slice(None, None, step),) * 3
    vols = {name: np.asarray(case.volumes[name][grid], dtype=np.float32) for name in SEQUENCES}
    fg = np.zeros(vols[SEQUENCES[0]].shape, dtype=bool)
    residue, ringing = 0.0, 0.0
    for name in SEQUENCES:
        v = vols[name]
        level = _level(v)
        cut = np.float32(FOREGROUND_FRACTION * level)
        fg |= v > cut
        fg |= v < -cut
        sample = v[::2, ::2, ::2]  # shares of the volume: 1 voxel in 8 is plenty
        tiny = np.float32(RESIDUE_FRACTION * level)
        near = (sample != 0) & (sample < tiny) & (sample > -tiny)
        residue = max(residue, float(np.count_nonzero(near)) / sample.size)
        if _is_fractional(case.volumes[name], sample):
            nonzero = max(int(np.count_nonzero(sample)), 1)
            negative = float(np.count_nonzero(sample < -tiny)) / nonzero
            if negative < SIGNED_SHARE:
                ringing = max(ringing, negative)
    outside, holes, face = _skull_measures(fg)
    flair_t2, t1_t1ce, shell = (0, 0), (0, 0), 0.0
    if np.count_nonzero(fg) >= MIN_FOREGROUND:  # else no tissue to judge contrasts by: no votes
        flair_t2 = _flair_t2_votes(vols["flair"][fg], vols["t2"][fg])
        t1, t1ce = vols["t1"][fg], vols["t1ce"][fg]
        r1, rc = _rank(t1), _rank(t1ce)
        t1_t1ce = _enhancement_votes(t1, t1ce, r1, rc, fg)
        surface = (fg & ~ndimage.binary_erosion(fg))[fg]
        shell = float(np.median(np.concatenate([r1[surface], rc[surface]]))) if surface.any() else 0.0
    return QualityMeasures(
        shape=case.shape,
        voxel_mm=voxel_size_mm(case.affine),
        residue=residue,
        ringing=ringing,
        outside=outside,
        holes=holes,
        face=face,
        shell=shell,
        flair_t2=flair_t2,
        t1_t1ce=t1_t1ce,
        foreground=int(fg.sum()),
        step=step,
    )


def warnings_from(case_id: str, m: QualityMeasures) -> list[QualityWarning]:
    """The warnings that `m` calls for, in the order of `preprocess.findings.CODES`."""
    out: list[QualityWarning] = []
    signs = []
    if m.outside > OUTSIDE_WARN:
        signs.append(
            f"{100 * m.outside:.0f} % of the signal lies outside the brain-shaped core "
            f"(expected under {100 * OUTSIDE_WARN:.0f} %)"
        )
    if m.holes > HOLES_WARN:
        signs.append(
            f"a dark layer enclosed by signal makes up {100 * m.holes:.0f} % of the head "
            f"(a skull; expected under {100 * HOLES_WARN:.0f} %)"
        )
    if m.shell > SHELL_RANK_WARN:
        signs.append(
            f"the outer surface is bright on T1 (median rank {m.shell:.2f} of the signal, a brain's "
            f"surface of CSF and grey matter is dark: under {SHELL_RANK_WARN:.2f}; scalp fat is bright)"
        )
    if m.face > FACE_WARN:
        signs.append(
            f"signal covers {100 * m.face:.0f} % of a face of the field of view (a stripped brain does not reach it)"
        )
    if signs:
        out.append(
            QualityWarning(
                "not-skull-stripped", f"{case_id}: the scan does not look skull-stripped: " + "; ".join(signs)
            )
        )
    reasons = []
    if not m.on_1mm_grid:
        reasons.append("voxel size " + " x ".join(f"{z:.3g}" for z in m.voxel_mm) + " mm, expected 1 mm")
    if m.residue > RESIDUE_WARN:
        reasons.append(
            f"{100 * m.residue:.0f} % of the volume holds near-zero, non-zero values "
            "(interpolation residue; BraTS background is exactly 0)"
        )
    if m.ringing > RINGING_WARN:
        reasons.append(
            f"{100 * m.ringing:.0f} % of the non-zero voxels are negative float values (interpolation ringing)"
        )
    if reasons:
        if m.shape != BRATS_SHAPE:
            reasons.append(
                "field of view " + "x".join(map(str, m.shape)) + " voxels, BraTS is " + "x".join(map(str, BRATS_SHAPE))
            )
        out.append(
            QualityWarning(
                "resampled",
                f"{case_id}: not on the 1 mm BraTS grid: "
                + "; ".join(reasons)
                + "; the model was trained on BraTS-preprocessed scans, "
                "results may be less reliable",
            )
        )
    if m.swapped("flair_t2"):
        e, r = m.flair_t2
        out.append(
            QualityWarning(
                "swap-flair-t2",
                f"{case_id}: FLAIR and T2 look swapped: {r} voxels are bright "
                f"on the FLAIR file and dark on the T2 file (CSF-like) against {e} the other "
                "way round; CSF is bright on T2 and dark on FLAIR",
            )
        )
    if m.swapped("t1_t1ce"):
        e, r = m.t1_t1ce
        out.append(
            QualityWarning(
                "swap-t1-t1ce",
                f"{case_id}: T1 and T1ce look swapped: {r} voxels are much "
                f"brighter on the T1 file than on the T1ce file (enhancement-like) against {e} "
                "the other way round; contrast agent only brightens T1ce",
            )
        )
    return out


def quality_warnings(case: Case) -> list[QualityWarning]:
    """Acquisition and file warnings of one case (see the module docstring); an empty list when clean."""
    found = warnings_from(case.case_id, quality_measures(case))
    for w in found:
        log.warning("%s", w.message)
    return found


def case_warnings(case: Case) -> list[QualityWarning]:
    """Every warning of one case: the detection stage's (`preprocess.detection_warnings`: brain mask,
    intensity spread, tumour) and the quality checks above, ordered as `preprocess.findings.CODES`
    lists the codes (a stable order for CSV columns and JSON), one warning per code.

    Runs (or reuses) the tumour detection; raises `CaseError` where that stage refuses the case.
    """
    from .sanity import detection_warnings  # sanity imports the detection stack; keep `quality` light

    order = {code: i for i, code in enumerate(CODES)}
    seen: dict[str, QualityWarning] = {}
    for w in detection_warnings(case) + quality_warnings(case):
        seen.setdefault(w.code, w)
    return sorted(seen.values(), key=lambda w: order[w.code])
