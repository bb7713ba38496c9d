import numpy as np
import pytest

from radpath.preprocess import find_tumor, load_case, model_input
from radpath.preprocess.case import SEQUENCES, Case
from radpath.preprocess.model_input import model_inputs
from radpath.preprocess.normalize import CLIP


def test_contract(case_dir):
    case = load_case(case_dir)
    x = model_input(case)
    assert x.shape == (224, 224, 4) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert CLIP[0] <= x.min() and x.max() <= CLIP[1]
    np.testing.assert_array_equal(x, model_input(case, find_tumor(case).index))
    assert (x[0, 0] == 0).all()  # background corner is exactly 0


def test_background_exactly_zero_and_brain_nonzero(case_dir):
    case = load_case(case_dir)
    x = model_input(case)
    brain = np.any(x != 0, axis=2)
    assert 0.3 < brain.mean() < 0.95  # cropped to the brain, background kept around it


def test_channels_are_sequences_in_order(case_dir):
    """Swapping two files swaps exactly the two channels: stacked as channels, not glued."""
    case = load_case(case_dir)
    swapped = Case(case.case_id, {**case.volumes, "t1": case.volumes["t2"], "t2": case.volumes["t1"]}, case.affine)
    a, b = model_input(case, 30), model_input(swapped, 30)
    i1, i2 = SEQUENCES.index("t1"), SEQUENCES.index("t2")
    np.testing.assert_allclose(a[..., i1], b[..., i2])
    np.testing.assert_allclose(a[..., SEQUENCES.index("flair")], b[..., SEQUENCES.index("flair")])


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
    assert stack.shape == (3, 224, 224, 4)
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


def test_to_model_plane_matches_the_model_input_geometry(case_dir):
    """A mask mapped with `to_model_plane` lands where the model input shows the same voxels."""
    from radpath.preprocess import load_case, model_input
    from radpath.preprocess.model_input import to_model_plane
    from radpath.preprocess.tumor_slice import find_tumor

    case = load_case(case_dir)
    k = find_tumor(case).index
    x = model_input(case, k)
    from radpath.preprocess.brain_mask import brain_mask

    brain = brain_mask(case).plane(case, k)
    mapped = to_model_plane(case, brain, order=0) > 0.5
    shown = (x != 0).any(-1)
    assert mapped.shape == (224, 224) and 0.1 < mapped.mean() < 0.9
    overlap = (mapped & shown).sum()
    assert overlap / shown.sum() > 0.9 and overlap / mapped.sum() > 0.9
