import numpy as np
import pytest

from radpath.contract.model_io import VIEWS, view_channels
from radpath.preprocess import find_tumor, load_case, model_input
from radpath.preprocess.case import SEQUENCES, Case
from radpath.preprocess.model_input import (
    brain_square,
    model_inputs,
    to_model_plane,
    tumour_square,
    view_to_brain_view,
)
from radpath.preprocess.normalize import CLIP
from radpath.preprocess.tumor_slice import tumor_mask


def test_contract(case_dir):
    case = load_case(case_dir)
    x = model_input(case)
    assert x.shape == (224, 224, 8) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert CLIP[0] <= x.min() and x.max() <= CLIP[1]
    np.testing.assert_array_equal(x, model_input(case, find_tumor(case).index))
    assert (x[0, 0, view_channels("brain")] == 0).all()  # the brain view's background corner is exactly 0


def test_background_exactly_zero_and_brain_nonzero(case_dir):
    case = load_case(case_dir)
    x = model_input(case)
    brain = np.any(x[..., view_channels("brain")] != 0, axis=2)
    assert 0.3 < brain.mean() < 0.95  # cropped to the brain, background kept around it
    assert np.any(x[..., view_channels("tumour")] != 0, axis=2).mean() > 0.5  # zoomed into the brain


def test_channels_are_sequences_in_order(case_dir):
    """Swapping two files swaps exactly the two channels: stacked as channels, not glued."""
    case = load_case(case_dir)
    swapped = Case(case.case_id, {**case.volumes, "t1": case.volumes["t2"], "t2": case.volumes["t1"]}, case.affine)
    a, b = model_input(case, 30), model_input(swapped, 30)
    i1, i2 = SEQUENCES.index("t1"), SEQUENCES.index("t2")
    for view in VIEWS:
        va, vb = a[..., view_channels(view)], b[..., view_channels(view)]
        np.testing.assert_allclose(va[..., i1], vb[..., i2])
        np.testing.assert_allclose(va[..., SEQUENCES.index("flair")], vb[..., SEQUENCES.index("flair")])


def test_no_distortion():
    """A disc in a non-square volume stays a disc (one scale factor for both axes)."""
    shape = (120, 60, 20)
    x, y = np.ogrid[:120, :60]
    brain = ((x - 60) / 55.0) ** 2 + ((y - 30) / 27.0) ** 2 < 1
    disc = (x - 60) ** 2 + (y - 30) ** 2 < 15**2
    vols = {}
    for i, name in enumerate(SEQUENCES):
        v = np.zeros(shape, np.float32)
        v[brain] = 100 + i
        v[disc] = 300
        v += np.random.default_rng(i).normal(0, 1, shape).astype(np.float32) * brain[..., None]
        vols[name] = v
    case = Case("disc", vols, np.eye(4))
    img = model_input(case, 10)[..., 0]
    bright = img > 5
    rows, cols = np.nonzero(bright)
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(h - w) <= 2, (h, w)


def test_neighbouring_slices(case_dir):
    case = load_case(case_dir)
    k = find_tumor(case).index
    stack = model_inputs(case, offsets=(-1, 0, 1))
    assert stack.shape == (3, 224, 224, 8)
    np.testing.assert_array_equal(stack[1], model_input(case, k))
    np.testing.assert_array_equal(stack[0], model_input(case, k - 1))
    edge = model_inputs(case, offsets=(-500, 500))  # clamped, never out of range
    np.testing.assert_array_equal(edge[0], model_input(case, 0))


def test_out_of_range_slice(case_dir):
    with pytest.raises(IndexError, match="outside"):
        model_input(load_case(case_dir), 62)


def test_scale_invariant_input(case_dir):
    case = load_case(case_dir)
    scaled = Case(case.case_id, {k: v.astype(np.float32) * 13.7 for k, v in case.volumes.items()}, case.affine)
    np.testing.assert_allclose(model_input(case, 30), model_input(scaled, 30), atol=0.05)


@pytest.mark.parametrize("view", VIEWS)
def test_to_model_plane_matches_the_model_input_geometry(case_dir, view):
    """A mask mapped with `to_model_plane` lands where the model input's view shows the same voxels."""
    from radpath.preprocess.brain_mask import brain_mask

    case = load_case(case_dir)
    k = find_tumor(case).index
    x = model_input(case, k)
    brain = brain_mask(case).plane(case, k)
    mapped = to_model_plane(case, brain, order=0, view=view) > 0.5
    shown = (x[..., view_channels(view)] != 0).any(-1)
    assert mapped.shape == (224, 224) and 0.1 < mapped.mean() <= 1.0
    overlap = (mapped & shown).sum()
    assert overlap / shown.sum() > 0.9 and overlap / mapped.sum() > 0.9


def test_tumour_view_is_centred_on_the_tumour_and_larger(case_dir):
    """The tumour view shows the found tumour near its centre, at least twice as large (in pixels)
    as the brain view does, and holds the same intensities (the same slice, only zoomed)."""
    case = load_case(case_dir)
    tumor = find_tumor(case)
    assert tumor.found
    plane = tumor_mask(case)[:, :, tumor.index]
    in_brain = to_model_plane(case, plane, order=0, view="brain") > 0.5
    in_tumour = to_model_plane(case, plane, order=0, view="tumour") > 0.5
    assert in_tumour.sum() >= 2 * in_brain.sum() > 0
    rows, cols = np.nonzero(in_tumour)
    assert abs(rows.mean() - 111.5) < 40 and abs(cols.mean() - 111.5) < 40
    x = model_input(case)
    brain_view, tumour_view = x[..., view_channels("brain")], x[..., view_channels("tumour")]
    # the lesion's median FLAIR z-score is the same in both views (zoom, not another slice or scaling)
    f = SEQUENCES.index("flair")
    assert abs(np.median(brain_view[in_brain, f]) - np.median(tumour_view[in_tumour, f])) < 0.3


def test_view_to_brain_view_maps_the_tumour_view_back(case_dir):
    """The tumour view's mask drawn into the brain view's plane covers the brain view's own mask."""
    case = load_case(case_dir)
    tumor = find_tumor(case)
    plane = tumor_mask(case)[:, :, tumor.index]
    in_brain = to_model_plane(case, plane, order=0, view="brain") > 0.5
    back = view_to_brain_view(case, to_model_plane(case, plane, order=0, view="tumour"), "tumour") > 0.5
    assert (back & in_brain).sum() / (back | in_brain).sum() > 0.85
    same = view_to_brain_view(case, in_brain.astype(np.float32), "brain")
    np.testing.assert_array_equal(same, in_brain.astype(np.float32))


def test_tumour_view_without_a_tumour_zooms_onto_the_brain_centre(case_dir, monkeypatch):
    """Nothing found (not even a candidate): the view is a zoom (half the brain square) around the
    brain's centre; with a sub-threshold candidate it follows the candidate."""
    import importlib

    from radpath.preprocess.tumor_slice import TumorSlice

    mi = importlib.import_module("radpath.preprocess.model_input")  # the module (the package re-exports the function)

    case = load_case(case_dir)
    real = find_tumor(case)
    monkeypatch.setattr(mi, "find_tumor", lambda c: TumorSlice(index=real.index, voxels=0, found=False))
    bx0, by0, bside = brain_square(case)
    tx0, ty0, tside = mi._tumour_square(case)
    assert tside == bside // 2
    assert abs((tx0 + tside / 2) - (bx0 + bside / 2)) <= 1 and abs((ty0 + tside / 2) - (by0 + bside / 2)) <= 1
    possible = TumorSlice(index=real.index, voxels=0, found=False, box=real.box, box_mask=real.box_mask, possible=True)
    monkeypatch.setattr(mi, "find_tumor", lambda c: possible)
    assert mi._tumour_square(case) == tumour_square(case)  # the candidate's box, as when found


def test_unknown_view_is_refused(case_dir):
    with pytest.raises(ValueError, match="unknown view 'side'"):
        to_model_plane(load_case(case_dir), np.zeros((4, 4)), view="side")
