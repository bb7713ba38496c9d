"""The model input contract: rounding, test-time views, age fill, and the stages that must agree."""

import numpy as np
import pytest

from radpath.contract import model_io as io


def test_round_input_is_exact_in_the_storage_dtype():
    x = np.random.default_rng(0).normal(size=(2, *io.IMAGE_SHAPE)).astype(np.float32) * 4
    r = io.round_input(x)
    assert r.dtype == io.INPUT_DTYPE
    np.testing.assert_array_equal(r.astype(io.STORAGE_DTYPE).astype(io.INPUT_DTYPE), r)  # cache is lossless
    assert np.abs(r - x).max() <= np.abs(x).max() * 2.0**-11
    assert not np.array_equal(r, x)  # it does round


def test_tta_views_are_the_slices_then_their_mirror_images():
    slices = np.arange(3 * 2 * 3 * 1, dtype=np.float32).reshape(3, 2, 3, 1)
    v = io.tta_views(slices)
    assert v.shape == (6, 2, 3, 1)
    np.testing.assert_array_equal(v[:3], slices)
    np.testing.assert_array_equal(v[3:], slices[:, :, ::-1, :])
    batch = np.stack([slices, slices + 100])  # training's [n, k, H, W, C]
    np.testing.assert_array_equal(io.tta_views(batch)[1], io.tta_views(slices + 100))
    assert io.tta_offsets((-2, -1, 0, 1, 2)) == io.TTA_OFFSETS and io.tta_offsets((0, 1)) == (0, 1)


def test_fill_ages():
    np.testing.assert_array_equal(io.fill_ages(None, 2), np.full(2, io.AGE_FILL_DAYS, np.float32))
    out = io.fill_ages([1000.0, None, np.nan], 3)
    assert out.dtype == np.float32 and out.tolist() == [1000.0, io.AGE_FILL_DAYS, io.AGE_FILL_DAYS]
    with pytest.raises(ValueError, match="2 ages for 3"):
        io.fill_ages([1.0, 2.0], 3)


def test_check_input_rejects_wrong_shape_and_non_finite():
    io.check_input(np.zeros((1, *io.IMAGE_SHAPE), np.float32))
    with pytest.raises(ValueError, match="model input must be"):
        io.check_input(np.zeros((1, 100, 100, 4), np.float32))
    bad = np.zeros((1, *io.IMAGE_SHAPE), np.float32)
    bad[0, 5, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        io.check_input(bad)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_all_finite_finds_one_bad_value_in_any_block(dtype):
    """The check runs `block` values at a time: a NaN or inf in the last, partial block counts, and
    large finite values whose sum overflows are still finite."""
    x = np.full((3, 7, 5), np.finfo(dtype).max, dtype)  # 105 values: 3 blocks of 40, the last partial
    assert io.all_finite(x, block=40) and io.all_finite(np.zeros((0, 4), dtype))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[2, 6, 4] = bad
        assert not io.all_finite(y, block=40) and not io.all_finite(y)
    assert io.all_finite(np.arange(10))  # integers are always finite


def test_preprocessing_produces_the_contract_input(case_dir):
    """radpath.preprocess.model_input still defines its own size and channel names (the detection helper's
    file); until it imports them from here, this test keeps the two equal."""
    from radpath.preprocess import CLASSES, SEQUENCES, load_case, model_input
    from radpath.preprocess.model_input import SIZE

    assert (SIZE, tuple(SEQUENCES), tuple(CLASSES)) == (io.IMAGE_SIZE, io.CHANNELS, io.CLASSES)
    x = model_input(load_case(case_dir))
    assert x.shape == io.IMAGE_SHAPE and x.dtype == io.INPUT_DTYPE
