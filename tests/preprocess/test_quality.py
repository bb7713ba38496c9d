"""Input quality checks (preprocess.quality) on small synthetic cases and deliberately broken variants.

The broken variants are built here from clean synthetic cases (swapped files, a skull and scalp
around the brain, a head reaching the field of view's edge, 2 mm voxels, a cubic float resample),
so each test knows the truth. The clean cases come from several generator styles (random contrast
families, noise, blur, slice thickness, int16 or float32) with an exactly-zero background: the
checks must hold across that randomisation, not for one look. `tests/bench/bench_quality.py`
measures the rates over many cases; these tests pin the behaviour on a few.
"""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from radpath.preprocess import Case, detection_warnings, load_case
from radpath.preprocess.findings import CODES
from radpath.preprocess.quality import BRATS_SHAPE, case_warnings, quality_measures, quality_warnings, voxel_size_mm
from radpath.synth.cohort import plan_cohort, synthesize_case
from radpath.synth.style import get_style

SHAPE = (96, 96, 62)
SEED = 5
STYLES = ("broad", "train", "heldout")
SWAPS = {"swap-flair-t2": ("flair", "t2"), "swap-t1-t1ce": ("t1", "t1ce")}


# ---- builders of clean and broken cases (also used by tests/bench/bench_quality.py) ----


def clean_style(style: str, **pins):
    """`style` with an exactly-zero background (BraTS files), other ranges as they are unless pinned."""
    return dataclasses.replace(get_style(style), backgrounds=(("zero", 1.0),), **pins)


def synthetic_case(
    index: int, style="broad", seed: int = SEED, shape=SHAPE, counts=None, with_tumor: bool = True
) -> tuple[Case, dict]:
    """Case `index` of a planned synthetic cohort, in memory (1 mm, RAS), and the generator's info."""
    plans = plan_cohort(index + 1, seed, counts=counts)
    plan = plans[index]
    volumes, _, info = synthesize_case(plan, seed, shape, with_tumor=with_tumor, style=style)
    return Case(plan.case_id, volumes, np.eye(4)), info


def swapped(case: Case, a: str, b: str) -> Case:
    volumes = dict(case.volumes)
    volumes[a], volumes[b] = volumes[b], volumes[a]
    return Case(case.case_id, volumes, case.affine)


def _tissue(case: Case) -> np.ndarray:
    """Voxels clearly above each sequence's background in any sequence (works on every background kind)."""
    mask = np.zeros(case.shape, dtype=bool)
    for v in case.volumes.values():
        mags = np.abs(v.astype(np.float32))
        mask |= mags > 0.05 * np.percentile(mags[mags > 0], 98)
    return mask


def with_skull(case: Case, neck: bool = False, dark_skull: bool = True) -> Case:
    """The brain wrapped in a dark skull (1.5-8 mm out) and a bright scalp (8-13 mm out), millimetres
    scaled to the volume (the small test volumes are 96/240 of BraTS). `neck=True` also fills a
    neck-sized disc from below the brain to the bottom face of the field of view. `dark_skull=False`
    gives the skull bright marrow instead (0.7 of the scalp), so no dark gap separates the layers."""
    brain = _tissue(case)
    unit = case.shape[0] / 240
    dist = ndimage.distance_transform_edt(~brain)
    skull = (dist > 1.5 * unit) & (dist <= 8 * unit)
    scalp = (dist > 8 * unit) & (dist <= 13 * unit)
    if neck:
        idx = np.argwhere(brain)
        cx, cy = idx[:, 0].mean(), idx[:, 1].mean()
        xx, yy = np.ogrid[: case.shape[0], : case.shape[1]]
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.25 * case.shape[0]) ** 2
        below = np.arange(case.shape[2]) < idx[:, 2].min() + 3
        scalp |= disc[:, :, None] & below[None, None, :] & ~brain
    brightness = {"flair": 0.9, "t1": 1.4, "t1ce": 1.4, "t2": 1.1}  # fat: bright on every sequence
    out = {}
    for name, v in case.volumes.items():
        level = float(np.percentile(v[brain], 75))
        w = v.copy()
        w[skull] = np.asarray((0.03 if dark_skull else 0.7 * brightness[name]) * level).astype(v.dtype)
        w[scalp] = np.asarray(brightness[name] * level).astype(v.dtype)
        out[name] = w
    return Case(case.case_id, out, case.affine)


def downsampled(case: Case, factor: int = 2) -> Case:
    """Every `factor`-th voxel averaged (linear zoom), stored as int16 on a `factor` mm grid."""
    out = {
        name: np.rint(ndimage.zoom(v.astype(np.float32), 1 / factor, order=1)).astype(np.int16)
        for name, v in case.volumes.items()
    }
    affine = case.affine.copy()
    affine[:3, :3] *= factor
    return Case(case.case_id, out, affine)


def _bspline3(t: float) -> float:
    t = abs(t)
    return 2 / 3 - t * t + t**3 / 2 if t < 1 else (2 - t) ** 3 / 6 if t < 2 else 0.0


def float_interpolated(case: Case, shift: float = 0.4) -> Case:
    """A cubic B-spline resample at a sub-voxel offset along x and y on the same 1 mm grid, kept as
    float32 (what most registration tools write): near-zero residue over the background, negative
    ringing at edges. Axis by axis (two 1-D filters), 30x faster than `ndimage.shift`."""
    weights = [_bspline3(k - shift) for k in (-2, -1, 0, 1, 2)][::-1]
    out = {}
    for name, v in case.volumes.items():
        x = v.astype(np.float32)
        for axis in (0, 1):
            x = ndimage.spline_filter1d(x, order=3, axis=axis, output=np.float32, mode="mirror")
            x = ndimage.correlate1d(x, weights, axis=axis, mode="constant", cval=0.0)
        out[name] = x
    return Case(case.case_id, out, case.affine)


def codes(case: Case) -> set[str]:
    return {w.code for w in quality_warnings(case)}


# ---- fixtures ----


@pytest.fixture(scope="module")
def clean_cases() -> list[tuple[Case, dict]]:
    """Three clean cases per style (exactly-zero background, contrasts randomised)."""
    return [synthetic_case(i, clean_style(s), seed=SEED + k) for k, s in enumerate(STYLES) for i in range(3)]


@pytest.fixture(scope="module")
def enhancing_cases() -> list[tuple[Case, dict]]:
    """Glioblastoma-look cases that enhance (ring on T1ce), one per style."""
    return [
        synthetic_case(
            1, clean_style(s, g_ring=(1.0, 1.0), enhancement=(1.6, 2.4)), seed=SEED + k, counts={"G": 2, "A": 0, "O": 0}
        )
        for k, s in enumerate(STYLES)
    ]


# ---- tests ----


def test_clean_cases_get_no_quality_warning(clean_cases):
    for case, info in clean_cases:
        assert quality_warnings(case) == [], (info["style"], info["contrast_family"])


def test_small_1mm_grid_is_not_warned_for_its_size(clean_cases):
    case, _ = clean_cases[0]
    assert case.shape != BRATS_SHAPE and voxel_size_mm(case.affine) == (1.0, 1.0, 1.0)
    assert "resampled" not in codes(case)


def test_swapped_flair_t2_is_flagged(clean_cases):
    for case, info in clean_cases:
        found = codes(swapped(case, "flair", "t2"))
        assert "swap-flair-t2" in found, (info["style"], info["contrast_family"], quality_measures(case).flair_t2)
        assert "swap-t1-t1ce" not in found


def test_swapped_t1_t1ce_is_flagged_when_the_case_enhances(enhancing_cases):
    for case, info in enhancing_cases:
        assert info["enhancing"]
        assert "swap-t1-t1ce" not in codes(case)
        found = codes(swapped(case, "t1", "t1ce"))
        assert "swap-t1-t1ce" in found, (info["style"], quality_measures(case).t1_t1ce)
        assert "swap-flair-t2" not in found


def test_both_swaps_at_once_are_both_flagged(enhancing_cases):
    case, _ = enhancing_cases[0]
    both = swapped(swapped(case, "flair", "t2"), "t1", "t1ce")
    assert {"swap-flair-t2", "swap-t1-t1ce"} <= codes(both)


def test_no_enhancement_means_no_t1_t1ce_evidence():
    """Without anything that enhances (no tumour, no enhancing vessels or choroid plexus) there is
    nothing to judge T1 against T1ce by: no warning either way (a guess would be a false alarm half
    the time)."""
    case, _ = synthetic_case(0, clean_style("broad", vessel_enhancement=(1.0, 1.0)), with_tumor=False)
    for variant in (case, swapped(case, "t1", "t1ce")):
        assert not quality_measures(variant).swapped("t1_t1ce")


def test_normal_enhancement_alone_reveals_a_t1_t1ce_swap():
    """Choroid plexus and venous sinuses enhance in every brain: enough evidence without a tumour."""
    case, _ = synthetic_case(0, clean_style("broad", vessel_enhancement=(1.8, 2.2)), with_tumor=False)
    assert "swap-t1-t1ce" not in codes(case)
    assert "swap-t1-t1ce" in codes(swapped(case, "t1", "t1ce"))


def test_skull_shell_is_flagged(clean_cases):
    for case, info in clean_cases[::3]:
        found = codes(with_skull(case))
        assert "not-skull-stripped" in found, info["style"]
        assert not found & {"resampled", "swap-flair-t2"}


def test_skull_with_bright_marrow_is_flagged_by_its_bright_surface(clean_cases):
    for case, info in clean_cases[1::3]:
        m = quality_measures(with_skull(case, dark_skull=False))
        assert m.shell > 0.5 > quality_measures(case).shell, info["style"]
        assert "not-skull-stripped" in codes(with_skull(case, dark_skull=False))


def test_head_reaching_the_field_of_view_edge_is_flagged(clean_cases):
    case, _ = clean_cases[1]
    m = quality_measures(with_skull(case, neck=True))
    assert m.face > 0.15
    assert "not-skull-stripped" in codes(with_skull(case, neck=True))


def test_2mm_grid_is_flagged_resampled_through_the_reader(tmp_path, clean_cases):
    case, _ = clean_cases[0]
    small = downsampled(case, 2)
    folder = tmp_path / "CASE_2MM"
    folder.mkdir()
    for name, v in small.volumes.items():
        nib.save(nib.Nifti1Image(v, small.affine), str(folder / f"CASE_2MM_{name}.nii.gz"))
    loaded = load_case(folder)
    assert voxel_size_mm(loaded.affine) == pytest.approx((2.0, 2.0, 2.0))
    found = [w for w in quality_warnings(loaded) if w.code == "resampled"]
    assert found and "2 x 2 x 2 mm" in found[0].message and "field of view" in found[0].message


def test_float_interpolation_residue_is_flagged_resampled(clean_cases):
    for case, info in clean_cases[::4]:
        resampled = float_interpolated(case)
        m = quality_measures(resampled)
        assert m.residue > 0.02 and m.voxel_mm == (1.0, 1.0, 1.0)
        assert "resampled" in codes(resampled), info["style"]


def test_float_storage_of_whole_numbers_is_not_resampled(clean_cases):
    case, _ = clean_cases[0]
    as_float = Case(case.case_id, {k: v.astype(np.float32) for k, v in case.volumes.items()}, case.affine)
    assert "resampled" not in codes(as_float)


def test_zscored_float_data_is_not_called_ringing():
    """z-scored files (half the brain negative, background 0) are signed by design, not resampled."""
    case, _ = synthetic_case(0, dataclasses.replace(get_style("broad"), backgrounds=(("zscored", 1.0),)))
    assert next(iter(case.volumes.values())).dtype == np.float32
    assert "resampled" not in codes(case)


def test_checks_are_scale_free(clean_cases):
    case, _ = clean_cases[2]
    for variant in (case, swapped(case, "flair", "t2"), with_skull(case)):
        scaled = Case(
            case.case_id,
            {k: (v.astype(np.float64) * 7.3).round().astype(np.int32) for k, v in variant.volumes.items()},
            case.affine,
        )
        assert codes(scaled) == codes(variant)


def test_case_warnings_merge_detection_and_quality_in_code_order():
    case, _ = synthetic_case(0, clean_style("broad"))
    broken = swapped(with_skull(case), "flair", "t2")
    found = case_warnings(broken)
    got = [w.code for w in found]
    detection = {w.code for w in detection_warnings(broken)}
    assert set(got) == detection | codes(broken)
    assert {"not-skull-stripped", "swap-flair-t2"} <= set(got)
    assert len(got) == len(set(got))
    assert got == sorted(got, key=list(CODES).index)
    assert all(set(w.as_dict()) == {"code", "message"} and case.case_id in w.message for w in found)


def test_case_warnings_surface_the_detection_verdict_on_a_tumour_free_brain():
    case, _ = synthetic_case(0, clean_style("broad"), with_tumor=False)
    detection = {w.code for w in detection_warnings(case)}
    assert detection & {"no-tumour", "tumour-uncertain"}  # the detection stage's codes for "not sure"
    assert detection <= {w.code for w in case_warnings(case)}


def test_clean_case_warnings_are_empty(clean_cases):
    case, _ = clean_cases[0]
    assert case_warnings(case) == []
