"""Where the model looked: integrated gradients for the predicted class, computed in JAX.

The exporter converts `explain_fn` with jax2tf into a second SavedModel signature (`explain`), so the
model server — TF Serving or the built-in one — computes the map next to the probabilities, and a
light client needs no framework. Integrated gradients (Sundararajan et al. 2017) with the all-zero
image as baseline: zero is exactly the background of the model input (robust z-scores, background
0), so the path runs from "no brain" to the case, and attributions sum to the change of the class
score. The map is |attribution| summed over each view's four channels ([b, H, W, len(VIEWS)], one
map per view of the model input), scaled to [0, 1] per image (one scale for all its views). The
client draws each view's map over it and adds the tumour view's map into the brain view's plane
(`client.explain`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from radpath.contract.model_io import split_views

IG_STEPS = 16
"""Riemann steps along the path (midpoint rule); 16 keeps the map stable at 16 forward+backward passes."""


def integrated_gradients(
    logits_fn: Callable[[jax.Array], jax.Array], images: jax.Array, temperature: float = 1.0, steps: int = IG_STEPS
) -> tuple[jax.Array, jax.Array]:
    """(probabilities [b, 3], attribution maps [b, H, W, len(VIEWS)] in [0, 1]) for `images` [b, H, W, C].

    `logits_fn(x)` returns logits [b, 3]; the target of each image is its predicted class.
    """
    probs = jax.nn.softmax(logits_fn(images) / temperature, axis=-1)
    target = jnp.argmax(probs, axis=-1)

    def score(x):
        logp = jax.nn.log_softmax(logits_fn(x) / temperature, axis=-1)
        return jnp.sum(jnp.take_along_axis(logp, target[:, None], axis=1))

    grad = jax.grad(score)

    def body(i, acc):
        alpha = (i.astype(jnp.float32) + 0.5) / steps
        return acc + grad(alpha * images)

    total = jax.lax.fori_loop(0, steps, body, jnp.zeros_like(images))
    attribution = split_views(jnp.abs(images * total / steps)).sum(axis=-1)
    peak = jnp.max(attribution, axis=(1, 2, 3), keepdims=True)
    return probs, attribution / jnp.maximum(peak, 1e-12)


def explain_fn(apply_fn: Callable, temperature: float = 1.0, steps: int = IG_STEPS) -> Callable:
    """f(variables, images, ages[, tumor_stats]) -> (probabilities, maps), ready for jax2tf (see the module
    docstring); the attribution is over the image only."""

    def f(variables, images, ages, *stats):
        def logits(x):
            return apply_fn(variables, x, ages, train=False, tumor_stats=stats[0] if stats else None)

        return integrated_gradients(logits, images, temperature, steps)

    return f
