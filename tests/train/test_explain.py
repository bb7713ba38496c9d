"""Integrated gradients: the map is where the class evidence is, one map per view, shapes and range
are as served."""

import jax.numpy as jnp
import numpy as np
import pytest

from radpath.contract.model_io import IMAGE_SHAPE, VIEWS, view_channels
from radpath.train.explain import integrated_gradients

C = IMAGE_SHAPE[-1]


@pytest.mark.parametrize("view", VIEWS)
def test_map_peaks_where_the_evidence_is_in_its_view(view):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (2, 32, 32, C)).astype(np.float32)
    ch = view_channels(view).start  # the view's FLAIR channel
    x[:, 20:26, 4:10, ch] += 3.0  # the "tumour": the only thing class 2 responds to

    def logits_fn(img):
        evidence = jnp.tanh(img[:, 20:26, 4:10, ch].mean(axis=(1, 2)))
        return jnp.stack([jnp.zeros_like(evidence), 0.1 * img.mean(axis=(1, 2, 3)), 4 * evidence], axis=1)

    probs, maps = integrated_gradients(logits_fn, jnp.asarray(x))
    probs, maps = np.asarray(probs), np.asarray(maps)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5) and (probs.argmax(1) == 2).all()
    assert maps.shape == (2, 32, 32, len(VIEWS)) and maps.min() >= 0 and np.isclose(maps.max(), 1.0)
    v = VIEWS.index(view)
    for m in maps:
        r, c, peak_view = np.unravel_index(m.argmax(), m.shape)
        assert 20 <= r < 26 and 4 <= c < 10 and peak_view == v
        assert m[..., v].sum() > 10 * np.delete(m, v, axis=-1).sum()  # the other view holds next to nothing
