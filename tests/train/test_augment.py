"""On-device augmentation: intensity domain randomisation keeps the background at 0, keeps the
ordering of intensities (monotone curve), and actually changes contrast between draws."""

import jax
import numpy as np

from radpath.contract.model_io import CHANNELS, IMAGE_SHAPE, VIEWS, view_channels
from radpath.train.config import TrainConfig
from radpath.train.loop import augment, intensity_augment

C = IMAGE_SHAPE[-1]


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((2, 32, 32, C), np.float32)
    x[:, 6:26, 6:26] = rng.normal(0, 1, (2, 20, 20, C))
    x[:, 12:18, 12:18] += 4.0  # a bright "lesion"
    return x


def test_background_stays_exactly_zero():
    x = _image()
    out = np.asarray(augment(jax.random.PRNGKey(0), x, TrainConfig()))
    assert out.shape == x.shape and np.isfinite(out).all()
    assert np.all(out[:, :3, :3] == 0)


def test_each_view_keeps_its_own_background():
    """Where one view shows brain and another background, the background view stays exactly 0."""
    x = _image()
    tumour = view_channels("tumour")
    x[..., tumour] = 0.0
    x[:, 2:30, 2:30, tumour] = 1.0  # the zoomed view covers more of the picture than the brain view
    out = np.asarray(augment(jax.random.PRNGKey(5), x, TrainConfig(rotate_degrees=0.0, scale_range=0.0)))
    brain = out[..., view_channels("brain")]
    flipped_or_not = x[..., view_channels("brain")]
    assert np.all(brain[:, 2:5, 2:5] == 0) and np.any(out[:, 2:5, 2:5, tumour] != 0)
    assert np.count_nonzero(brain) <= np.count_nonzero(flipped_or_not)


def test_a_sequence_gets_the_same_intensity_change_in_every_view():
    """One scan, two zooms: each sequence's curve, gain and offset are shared by the views."""
    cfg = TrainConfig(noise_std=0.0, blur=0.0)
    x = np.broadcast_to(np.linspace(-2, 4, 16, dtype=np.float32)[None, None, :, None], (4, 1, 16, C)).copy()
    out = np.asarray(intensity_augment(jax.random.PRNGKey(6), x, cfg))
    views = out.reshape(4, 1, 16, len(VIEWS), len(CHANNELS))
    np.testing.assert_allclose(views[..., 0, :], views[..., 1, :], atol=1e-6)
    assert np.abs(np.diff(views[0, 0, :, 0, :], axis=-1)).max() > 1e-3  # sequences differ from each other


def test_curve_is_monotone_without_noise_or_blur():
    cfg = TrainConfig(noise_std=0.0, blur=0.0, intensity_jitter=0.0)
    line = np.linspace(-5, 10, 64, dtype=np.float32)
    x = np.broadcast_to(line[None, None, :, None], (8, 1, 64, C)).copy()
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
    seg = np.zeros((2, 32, 32, len(VIEWS) * 2), np.float32)  # two classes in each view
    seg[..., ::2] = 1.0
    seg[:, 12:18, 12:18] = [0.0, 1.0] * len(VIEWS)  # the "lesion" is class 1
    cfg = TrainConfig(rotate_degrees=30.0)
    out, moved = augment_pair(jax.random.PRNGKey(4), x, seg, cfg)
    moved = np.asarray(moved)
    np.testing.assert_allclose(moved.reshape(*moved.shape[:3], len(VIEWS), 2).sum(-1), 1.0, atol=1e-5)
    bright = np.asarray(out).mean(-1) > np.asarray(out).mean(-1)[:, 6:26, 6:26].mean() + 1.5
    assert (moved[..., 1][bright] > 0.5).mean() > 0.8  # where the lesion went, so did its label
    np.testing.assert_array_equal(np.asarray(augment(jax.random.PRNGKey(4), x, cfg)), np.asarray(out))
