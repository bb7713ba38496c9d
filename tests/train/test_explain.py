"""Integrated gradients: the map is where the class evidence is, shapes and range are as served."""

import jax.numpy as jnp
import numpy as np

from radpath.train.explain import integrated_gradients


def test_map_peaks_where_the_evidence_is():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (2, 32, 32, 4)).astype(np.float32)
    x[:, 20:26, 4:10, 0] += 3.0  # the "tumour": the only thing class 2 responds to

    def logits_fn(img):
        evidence = jnp.tanh(img[:, 20:26, 4:10, 0].mean(axis=(1, 2)))
        return jnp.stack([jnp.zeros_like(evidence), 0.1 * img.mean(axis=(1, 2, 3)), 4 * evidence], axis=1)

    probs, maps = integrated_gradients(logits_fn, jnp.asarray(x))
    probs, maps = np.asarray(probs), np.asarray(maps)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5) and (probs.argmax(1) == 2).all()
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and np.isclose(maps.max(), 1.0)
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert 20 <= r < 26 and 4 <= c < 10
