"""The ResNet's convolutions in CPU-friendly forms (`resnet.fast_conv`): stride 2 without
input-dilated gradients, 1x1 as matrix products.

XLA:CPU runs a convolution over a zero-dilated input as plain loops; the rewrite must give the same
values and gradients as `lax.conv_general_dilated` and leave no such convolution in a training step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from radpath.train.resnet import ResNet, fast_conv

DN = lax.conv_dimension_numbers((1, 8, 8, 3), (3, 3, 3, 5), ("NHWC", "HWIO", "NHWC"))


CASES = [  # (input size, kernel, strides, padding): the ResNet's own cases first, then odd sizes, uneven padding
    ((8, 8), 3, 2, "SAME"),
    ((8, 8), 3, 2, ((1, 1), (1, 1))),
    ((8, 8), 1, 2, "SAME"),
    ((8, 8), 1, 1, "SAME"),
    ((8, 8), 3, 1, "SAME"),
    ((9, 14), 3, 2, ((0, 1), (2, 0))),
    ((7, 5), 7, 2, ((3, 3), (3, 3))),
    ((9, 14), 1, 2, "VALID"),
]


@pytest.mark.parametrize(("size", "k", "stride", "padding"), CASES)
def test_same_values_and_gradients_as_lax(size, k, stride, padding):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, *size, 3)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 5)).astype(np.float32)

    def loss(x, w, conv):
        return jnp.sum(jnp.sin(conv(x, w, (stride, stride), padding, dimension_numbers=DN, feature_group_count=1)))

    ref = lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DN)
    out = fast_conv(x, w, (stride, stride), padding, dimension_numbers=DN, feature_group_count=1)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-5)
    for a, b in zip(
        jax.grad(loss, (0, 1))(x, w, fast_conv),
        jax.grad(loss, (0, 1))(x, w, lax.conv_general_dilated),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_training_gradient_has_no_input_dilated_convolution():
    model = ResNet(stages=(1, 1, 1, 1), width=2, num_classes=3)
    x = jnp.zeros((2, 32, 32, 4))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)

    def loss(params):
        logits, _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]}, x, train=True, mutable=["batch_stats"]
        )
        return logits.sum()

    hlo = jax.jit(jax.grad(loss)).lower(variables["params"]).compile().as_text()
    assert "convolution" in hlo and "lhs_dilate" not in hlo
