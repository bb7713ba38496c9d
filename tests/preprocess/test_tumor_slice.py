import numpy as np
import pytest

from radpath.preprocess import NoTumorFoundError, detection_warnings, find_tumor, load_case, max_tumor_slice
from radpath.preprocess.brain_mask import full_brain_mask
from radpath.preprocess.case import Case
from radpath.preprocess.read_case import _to_canonical, read_volume
from radpath.synth.cohort import plan_cohort, save_ras, synthesize_case, write_synthetic_cohort
from tests.conftest import SMALL_SHAPE


def _gt_areas(root, case_id):
    seg, affine = read_volume(root / "Segmentation" / f"{case_id}_seg.nii.gz")
    return (_to_canonical(seg, affine)[0] > 0).sum(axis=(0, 1))


def test_slice_selection_scored_against_ground_truth(tmp_path):
    """Target from the issue: the chosen slice holds >= half the maximum tumour area in >= 95 % of
    cases. 60 cases with per-scan scales spread over 20x, three seeds' worth of anatomy."""
    hits, misses = 0, []
    for seed in (101, 102, 103):
        root = tmp_path / str(seed)
        plans = write_synthetic_cohort(root, cases=20, seed=seed, shape=SMALL_SHAPE, workers=2, progress=False)
        for p in plans:
            areas = _gt_areas(root, p.case_id)
            k = max_tumor_slice(load_case(root / "Radiology" / p.case_id))
            if areas[k] >= 0.5 * areas.max():
                hits += 1
            else:
                misses.append((p.case_id, k, int(areas.argmax())))
    assert hits / 60 >= 0.95, misses


def _rescaled(case: Case, factors: dict[str, float]) -> Case:
    vols = {k: (v.astype(np.float64) * factors[k]).astype(np.float32) for k, v in case.volumes.items()}
    return Case(case.case_id, vols, case.affine)


def test_scale_invariance(case_dir):
    """Arbitrary scanner scale (different per sequence) changes nothing."""
    case = load_case(case_dir)
    ref = find_tumor(case)
    other = find_tumor(_rescaled(case, {"flair": 19.0, "t1": 0.05, "t1ce": 3.3, "t2": 0.2}))
    assert other.index == ref.index
    assert abs(other.voxels - ref.voxels) <= 0.02 * ref.voxels


def test_bright_outliers_do_not_move_the_slice(case_dir):
    case = load_case(case_dir)
    ref = find_tumor(case).index
    vols = {k: v.copy() for k, v in case.volumes.items()}
    brain = np.argwhere(full_brain_mask(case))
    rng = np.random.default_rng(0)
    for p in brain[rng.choice(len(brain), 50)]:
        for k in ("flair", "t2"):
            vols[k][tuple(p)] = 30000
    assert find_tumor(Case(case.case_id, vols, case.affine)).index == ref


def test_no_tumour_behaviour(tmp_path):
    plan = plan_cohort(3, seed=5)[0]
    volumes, seg, _ = synthesize_case(plan, 5, SMALL_SHAPE, with_tumor=False)
    assert seg.max() == 0
    case_dir = tmp_path / "NT"
    case_dir.mkdir()
    for name, data in volumes.items():
        save_ras(data, case_dir / f"NT_{name}.nii.gz")
    case = load_case(case_dir)
    tumor = find_tumor(case)
    assert not tumor.found and tumor.voxels == 0
    assert not tumor.mask(case).any()
    if not tumor.possible:  # nothing stands out at all: the brain's largest slice
        brain_areas = full_brain_mask(case).sum(axis=(0, 1))
        assert brain_areas[tumor.index] >= 0.95 * brain_areas.max()
    codes = [w.code for w in detection_warnings(case)]
    assert codes == ["tumour-uncertain" if tumor.possible else "no-tumour"]
    assert max_tumor_slice(case) == tumor.index
    with pytest.raises(NoTumorFoundError, match="no tumour found"):
        max_tumor_slice(case, require=True)


def test_tumour_volume_close_to_ground_truth(small_cohort):
    """Whole-tumour volume estimate within a factor 0.5..1.6 of the truth for most cases (the cohort
    spans every look of style `broad`, tumours down to FLAIR z 1.5, whose dim margins are uncertain)."""
    ok = 0
    ids = sorted(p.name for p in (small_cohort / "Radiology").iterdir())
    for cid in ids:
        truth = _gt_areas(small_cohort, cid).sum()
        est = find_tumor(load_case(small_cohort / "Radiology" / cid)).voxels
        ok += 0.5 * truth <= est <= 1.6 * truth
    assert ok >= 0.75 * len(ids)


def _styled(index: int, seed: int, style, with_tumor: bool = True):
    from radpath.preprocess.case import Case as _Case

    plan = plan_cohort(index + 1, seed)[index]
    volumes, seg, info = synthesize_case(plan, seed, SMALL_SHAPE, with_tumor=with_tumor, style=style)
    return _Case(plan.case_id, volumes, np.eye(4)), seg > 0, info


def test_subtle_tumours_are_located():
    """Issue 8: real tumours sit at FLAIR robust z 2.6-2.9, lower-grade ones lower. At z 1.75 (every
    contrast family, noise, bias and file quirk of style `broad`), the chosen slice holds at least
    half the maximum tumour area in nearly all cases, and some are found with confidence (the others
    are "possible": the slice of a sub-threshold candidate). Nearly all: tests/bench/bench_detection.py
    measures >= 95 % over 20 cases per level; 8 cases may miss two (a large midline lesion, a small
    T2-FLAIR mismatch lesion with a faint T2 in this draw)."""
    import dataclasses

    from radpath.synth.style import STYLES

    style = dataclasses.replace(STYLES["broad"], flair_z=(1.75, 1.75))
    hits, found, n = 0, 0, 8
    for i in range(n):
        case, tumour, info = _styled(i, 41, style)
        assert abs(info["flair_z"] - 1.75) < 0.3, info["flair_z"]
        t = find_tumor(case)
        areas = tumour.sum(axis=(0, 1))
        hits += areas[t.index] >= 0.5 * areas.max()
        found += t.found
    assert hits >= n - 2 and found >= n // 4, (hits, found)


def test_tumour_free_brains_are_not_found():
    """Issue 8: at most 5 % of tumour-free brains give "tumour found". Here at most 1 of 8 small
    brains of every look of style `broad` (near-zero and z-scored backgrounds, strong bias fields);
    the rate itself is measured by tests/bench/bench_detection.py."""
    from radpath.synth.style import STYLES

    found = []
    for i in range(8):
        case, tumour, _ = _styled(i, 43, STYLES["broad"], with_tumor=False)
        assert not tumour.any()
        t = find_tumor(case)
        if t.found:
            found.append((i, t.score))
        assert not t.mask(case).any() or t.found
    assert len(found) <= 1, found


def test_tumour_mask_accessor(case_dir):
    """Full-resolution mask for outlines: overlaps the ground truth, its largest slice is the index."""
    from radpath.preprocess import tumor_mask

    case = load_case(case_dir)
    mask = tumor_mask(case)
    assert mask.shape == case.shape and mask.dtype == bool
    t = find_tumor(case)
    assert t.found and mask.sum() == t.voxels
    truth = _gt_areas(case_dir.parents[1], case_dir.name)
    assert truth[t.index] >= 0.5 * truth.max()
    assert abs(int(mask.sum(axis=(0, 1)).argmax()) - t.index) <= 2
