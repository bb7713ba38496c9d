"""The brain mask does not trust exact zeros; garbage is refused or flagged, never answered confidently."""

import numpy as np
import pytest
from scipy import ndimage

from radpath.contract.model_io import view_channels
from radpath.preprocess import CaseError, detection_warnings, find_tumor, model_input
from radpath.preprocess.brain_mask import brain_mask, full_brain_mask
from radpath.preprocess.case import SEQUENCES, Case
from radpath.synth.cohort import plan_cohort, synthesize_case
from tests.conftest import SMALL_SHAPE


@pytest.fixture(scope="module")
def generated():
    """One small generated case (int16, background exactly 0: style `legacy`) and its ground-truth tumour."""
    plan = plan_cohort(4, seed=21)[1]
    volumes, seg, _ = synthesize_case(plan, 21, SMALL_SHAPE, style="legacy")
    assert all(v.dtype == np.int16 for v in volumes.values())
    return volumes, seg > 0


def _case(volumes, name="c") -> Case:
    return Case(name, dict(volumes), np.eye(4))


def _truth(volumes) -> np.ndarray:
    return ndimage.binary_fill_holes(np.any([v != 0 for v in volumes.values()], axis=0))


def _resampled(volumes, rng) -> dict[str, np.ndarray]:
    """float32 after a cubic sub-voxel shift: near-zero residue and negative ringing in the background."""
    out = {}
    for name, v in volumes.items():
        w = ndimage.shift(v.astype(np.float32), (0.4, -0.3, 0.25), order=3, mode="constant")
        w += rng.normal(0, 1e-3 * float(np.abs(w).max()), w.shape).astype(np.float32)  # float residue
        out[name] = w
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_exact_zero_background_is_nonzero_any(generated):
    """BraTS convention: the mask is "non-zero in any sequence", bit for bit, and nothing is flagged."""
    volumes, _ = generated
    case = _case(volumes)
    np.testing.assert_array_equal(full_brain_mask(case), case.nonzero_any())
    assert not brain_mask(case).estimated
    assert [w.code for w in brain_mask(case).warnings(case.case_id)] == []


def test_near_zero_float_background(generated):
    """The silent failure of issue 8: non-zero background made "the brain" 70-80 % of the volume."""
    volumes, tumour = generated
    truth = _truth(volumes)
    shifted = _resampled(volumes, np.random.default_rng(0))
    case = _case(shifted)
    assert case.nonzero_any().mean() > 0.9  # exact zeros are gone
    mask = brain_mask(case)
    assert mask.estimated
    assert _dice(full_brain_mask(case), truth) > 0.95
    assert abs(mask.fraction - truth.mean()) < 0.03
    codes = [w.code for w in detection_warnings(case)]
    assert "near-zero-background" in codes and "brain-covers-volume" not in codes
    ref = find_tumor(_case(volumes))
    tumor = find_tumor(case)
    assert tumor.found and abs(tumor.index - ref.index) <= 2
    assert tumor.brain_fraction < 0.2  # the brain did not turn into tumour
    x = model_input(case)
    assert (x[0, 0, view_channels("brain")] == 0).all() and x.max() <= 10 and np.median(x[x != 0]) < 1.0


def test_int16_with_negative_ringing(generated):
    """int16 resampled files keep only the ringing's small integers (negative and positive) near the edge."""
    volumes, _ = generated
    truth = _truth(volumes)
    rng = np.random.default_rng(1)
    ring = ndimage.binary_dilation(truth, iterations=2) & ~truth
    out = {}
    for name, v in volumes.items():
        w = v.copy()
        level = int(np.median(v[truth]))
        w[ring] = rng.integers(-level // 8, level // 20, int(ring.sum())).astype(np.int16)
        out[name] = w
    case = _case(out)
    assert brain_mask(case).estimated
    assert _dice(full_brain_mask(case), truth) > 0.95


def test_z_scored_input(generated):
    """Brain standardised to mean 0 (half of it negative), background exactly 0: same brain, same slice."""
    volumes, _ = generated
    truth = _truth(volumes)
    z = {}
    for name, v in volumes.items():
        f = v.astype(np.float32)
        vals = f[truth]
        z[name] = np.where(truth, (f - vals.mean()) / vals.std(), 0).astype(np.float32)
    case = _case(z)
    assert _dice(full_brain_mask(case), truth) > 0.99
    assert find_tumor(case).index == find_tumor(_case(volumes)).index


def test_constant_nonzero_background(generated):
    """A background that is a constant other than 0 (e.g. the minimum after a rescale) is background."""
    volumes, _ = generated
    truth = _truth(volumes)
    case = _case({k: np.where(truth, v, -1000).astype(np.int16) for k, v in volumes.items()})
    assert _dice(full_brain_mask(case), truth) > 0.95


def test_no_background_is_refused(generated):
    """Brain everywhere (a tight crop, a noise volume): no background to tell the brain from."""
    rng = np.random.default_rng(2)
    vols = {name: rng.normal(500, 50, (40, 40, 40)).astype(np.float32) for name in SEQUENCES}
    with pytest.raises(CaseError, match="no background"):
        find_tumor(_case(vols))


def test_flat_brain_is_refused(generated):
    """A brain with (almost) no intensity spread: no contrast to classify on."""
    volumes, _ = generated
    truth = _truth(volumes)
    rng = np.random.default_rng(3)
    vols = dict(volumes)
    vols["t1"] = np.where(truth, 1000 + rng.integers(0, 2, truth.shape), 0).astype(np.int16)
    with pytest.raises(CaseError, match="spread"):
        find_tumor(_case(vols))


def test_low_contrast_is_flagged(generated):
    volumes, _ = generated
    truth = _truth(volumes)
    vols = dict(volumes)
    t1 = volumes["t1"].astype(np.float32)
    q75, q25 = np.percentile(t1[truth], [75, 25])
    offset = (q75 - q25) / 1.349 / 0.015  # a large constant under the same spread: relative spread ~1.5 %
    vols["t1"] = np.where(truth, offset + t1, 0).astype(np.float32)
    codes = [w.code for w in detection_warnings(_case(vols))]
    assert "low-contrast" in codes


def test_tumour_most_of_the_brain_is_refused(generated, monkeypatch):
    """The guard: a "tumour" covering most of the brain means the mask or the intensities are broken
    (the relative evidence itself cannot grow that large, so the guard is exercised directly)."""
    import radpath.preprocess.tumor_slice as ts

    volumes, _ = generated
    case = _case(volumes)
    brain = full_brain_mask(case)
    full = (slice(0, brain.shape[0]), slice(0, brain.shape[1]), slice(0, brain.shape[2]))
    monkeypatch.setattr(ts, "_refine", lambda case, comp, g: (full, brain.copy()))
    with pytest.raises(CaseError, match="covers"):
        find_tumor(case)


def test_large_tumour_warns(generated):
    volumes, _ = generated
    import radpath.preprocess.tumor_slice as ts

    case = _case(volumes)
    big = ts.TumorSlice(index=30, voxels=1000, found=True, score=9.0, brain_fraction=0.4)
    assert [w.code for w in ts.tumor_warnings(case, big)] == ["tumour-most-of-brain"]
    assert ts.tumor_warnings(case, find_tumor(case)) == []
