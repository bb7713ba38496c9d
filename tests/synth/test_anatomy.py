"""Anatomy from the ICBM 2009a template: real brain shape on the BraTS grid, per-case deformation,
atrophy with age, lesions in white matter with mass effect and oedema along white matter, and the
template's notice in every cohort (quarter-size grids: fast)."""

from importlib import resources

import numpy as np
import pytest

from radpath.synth.anatomy import (
    BRATS_SHAPE,
    VENTRICLE,
    WM,
    load_atlas,
    make_brain,
)
from radpath.synth.cohort import write_synthetic_cohort
from radpath.synth.style import STYLES
from radpath.synth.tumors import ED, FRONTAL_MM, make_tumor, plan_lesion

QUARTER = (60, 60, 39)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _template_brain(shape: tuple[int, int, int]) -> np.ndarray:
    """The template's brain sampled at the centres of `shape`'s voxels (nearest), no deformation."""
    atlas = load_atlas()
    full = np.zeros(BRATS_SHAPE, dtype=bool)
    full[atlas.box] = (atlas.csf.astype(np.uint16) + atlas.gm + atlas.wm) > 127
    idx = [
        np.clip(np.rint((np.arange(n) + 0.5) * (f / n) - 0.5).astype(int), 0, f - 1) for n, f in zip(shape, BRATS_SHAPE)
    ]
    return full[np.ix_(*idx)]


def _full(brain, values: np.ndarray) -> np.ndarray:
    out = np.zeros(brain.shape, dtype=values.dtype)
    out[brain.box] = values
    return out


def test_template_ships_as_package_data_with_its_notice():
    files = resources.files("radpath.synth") / "data"
    assert (files / "icbm2009a_brats.npz").is_file()
    notice = (files / "ICBM2009a_NOTICE.txt").read_text()
    assert "Copyright (C) 1993-2009 Louis Collins" in notice and "ICBM 2009a" in notice
    atlas = load_atlas()
    brain_ml = int(((atlas.csf.astype(np.uint16) + atlas.gm + atlas.wm) > 127).sum()) / 1000
    assert 1200 < brain_ml < 1600  # an adult brain on the 1 mm grid
    assert all(0 <= s.start < s.stop <= n for s, n in zip(atlas.box, BRATS_SHAPE))
    assert 10_000 < int((atlas.region == VENTRICLE).sum()) < 60_000  # lateral ventricles, ml


def test_brains_keep_the_template_shape_and_vary_per_case():
    template = _template_brain(QUARTER)
    masks = []
    for k in range(4):
        brain = make_brain(np.random.default_rng(k), QUARTER, 50.0)
        inside = _full(brain, brain.inside)
        masks.append(inside)
        assert _dice(inside, template) > 0.85
        fractions = brain.csf + brain.gm + brain.wm
        assert np.allclose(fractions[brain.inside], 1.0, atol=1e-4) and (fractions[~brain.inside] == 0).all()
    assert all(_dice(masks[0], m) < 0.995 for m in masks[1:])  # a deformation per case


def test_ventricles_and_sulci_widen_with_age():
    young = make_brain(np.random.default_rng(3), QUARTER, 25.0)
    old = make_brain(np.random.default_rng(3), QUARTER, 85.0)
    vent_young = young.csf[young.region == VENTRICLE].sum()
    vent_old = old.csf[old.region == VENTRICLE].sum()
    assert vent_old > 1.4 * vent_young
    assert old.csf.sum() > 1.15 * young.csf.sum()


def test_mass_effect_pushes_tissue_away_from_the_lesion():
    style = STYLES["broad"]
    lesion = plan_lesion(np.random.default_rng(0), "G", style)
    plain = make_brain(np.random.default_rng(1), QUARTER, 60.0)
    pushed = make_brain(np.random.default_rng(1), QUARTER, 60.0, push=lesion.push)
    assert pushed.lesion_center is not None and plain.lesion_center is None
    c = pushed.lesion_center + np.array([s.start for s in pushed.box])
    warp = pushed.warp
    # the lesion's centre shows the template point it was drawn at
    assert np.allclose(warp.to_template(c[:, None])[:, 0], lesion.center, atol=1.0)
    # a point a radius away samples the template closer to the centre: the tissue there was pushed out
    r_vox = lesion.radius_mm / warp.spacing[0]
    for direction in np.eye(3):
        p = c + r_vox * direction
        moved = np.linalg.norm(warp.to_template(p[:, None])[:, 0] - lesion.center)
        unmoved = np.linalg.norm(plain.warp.to_template(p[:, None])[:, 0] - lesion.center)
        assert moved < 0.9 * unmoved


@pytest.mark.parametrize("appearance", ["A", "O", "G"])
def test_lesions_centred_in_white_matter_with_oedema_along_it(appearance):
    atlas = load_atlas()
    lo = np.array([s.start for s in atlas.box])
    for k in range(3):
        rng = np.random.default_rng([k, ord(appearance)])
        lesion = plan_lesion(rng, appearance, STYLES["broad"])
        t = tuple(np.rint(lesion.center - lo).astype(int))
        assert atlas.wm[t] > 150  # drawn in the template's white matter
        if lesion.signs["frontal"]:
            assert lesion.center[1] > atlas.center[1] + FRONTAL_MM
        brain = make_brain(np.random.default_rng(k), QUARTER, 50.0, push=lesion.push)
        tumor = make_tumor(rng, brain, lesion)
        seg = tumor.seg
        assert seg.any()
        tissue = brain.tissue[tumor.box]
        assert (tissue[seg > 0] > 0).all()  # never outside the brain
        if appearance == "G" and (seg == ED).sum() > 20:
            wm = brain.wm[tumor.box]
            assert wm[seg == ED].mean() > 0.6  # oedema follows white matter
            assert (tissue[seg == ED] == WM).mean() > 0.7


def test_every_cohort_carries_the_template_notice(tmp_path):
    write_synthetic_cohort(tmp_path / "c", cases=1, seed=0, shape=QUARTER, progress=False)
    text = (tmp_path / "c" / "SYNTHETIC.md").read_text()
    assert "ICBM 2009a" in text and "Copyright (C) 1993-2009 Louis Collins" in text
    assert "provided that the above copyright notice appear in all copies" in text.replace("\n", " ")
