"""On-device augmentation: intensity domain randomisation keeps the background at 0, keeps the
ordering of intensities (monotone curve), and actually changes contrast between draws."""

import jax
import numpy as np

from radpath.train.config import TrainConfig
from radpath.train.loop import augment, intensity_augment


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((2, 32, 32, 4), np.float32)
    x[:, 6:26, 6:26] = rng.normal(0, 1, (2, 20, 20, 4))
    x[:, 12:18, 12:18] += 4.0  # a bright "lesion"
    return x


def test_background_stays_exactly_zero():
    x = _image()
    out = np.asarray(augment(jax.random.PRNGKey(0), x, TrainConfig()))
    assert out.shape == x.shape and np.isfinite(out).all()
    assert np.all(out[:, :3, :3] == 0)


def test_curve_is_monotone_without_noise_or_blur():
    cfg = TrainConfig(noise_std=0.0, blur=0.0, intensity_jitter=0.0)
    line = np.linspace(-5, 10, 64, dtype=np.float32)
    x = np.broadcast_to(line[None, None, :, None], (8, 1, 64, 4)).copy()
    out = np.asarray(intensity_augment(jax.random.PRNGKey(3), x, cfg))
    assert np.all(np.diff(out, axis=2) > 0)


def test_contrast_differs_between_draws():
    x = _image()
    cfg = TrainConfig()
    a = np.asarray(intensity_augment(jax.random.PRNGKey(1), x, cfg))
    b = np.asarray(intensity_augment(jax.random.PRNGKey(2), x, cfg))

    def lesion(y):
        return y[:, 12:18, 12:18].mean() - y[:, 6:10, 6:10].mean()

    assert abs(lesion(a) - lesion(b)) > 0.05


def test_segmentation_target_moves_with_the_image():
    from radpath.train.loop import augment_pair

    x = _image()
    seg = np.zeros((2, 32, 32, 2), np.float32)
    seg[..., 0] = 1.0
    seg[:, 12:18, 12:18] = [0.0, 1.0]  # the "lesion" is class 1
    cfg = TrainConfig(rotate_degrees=30.0)
    out, moved = augment_pair(jax.random.PRNGKey(4), x, seg, cfg)
    moved = np.asarray(moved)
    np.testing.assert_allclose(moved.sum(-1), 1.0, atol=1e-5)
    bright = np.asarray(out).mean(-1) > np.asarray(out).mean(-1)[:, 6:26, 6:26].mean() + 1.5
    assert (moved[..., 1][bright] > 0.5).mean() > 0.8  # where the lesion went, so did its label
    np.testing.assert_array_equal(np.asarray(augment(jax.random.PRNGKey(4), x, cfg)), np.asarray(out))
