"""ResNet50 in Flax (Linen), for [N, 224, 224, 4] MRI slices and 3 classes.

Follows the Flax ImageNet example (bottleneck blocks [3, 4, 6, 3], zero-initialised last BatchNorm
scale of each block) with two changes: `width` (64 = the standard ResNet50) lets the same code train
a small variant quickly on a CPU, and `bn_axis` names the pmap axis over which BatchNorm statistics
are averaged in training (None outside pmap, e.g. for export, where running averages are used).
Optionally the patient's age enters next to the pooled image features (`use_age`), and an
auxiliary segmentation head (`seg_classes` > 0) reads the second stage's features (stride 8): trained
on the synthetic cohort's tumour masks, it points the encoder at the tumour and its sub-regions. It
is used in training only (`return_seg=True`); the exported model computes the class logits alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from .config import RESNET50_STAGES as STAGES_RESNET50

AGE_CENTER_YEARS, AGE_SCALE_YEARS = 50.0, 15.0


class Bottleneck(nn.Module):
    filters: int
    conv: Callable[..., Any]
    norm: Callable[..., Any]
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
        y = self.norm(scale_init=nn.initializers.zeros_init())(self.conv(self.filters * 4, (1, 1))(y))
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return nn.relu(residual + y)


class ResNet(nn.Module):
    """Logits [N, num_classes] from images [N, H, W, C] (and age in days [N] when `use_age`)."""

    stages: Sequence[int] = STAGES_RESNET50
    width: int = 64
    num_classes: int = 3
    use_age: bool = False
    bn_axis: str | None = None
    seg_classes: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, age_days=None, train: bool = False, return_seg: bool = False):
        conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
            axis_name=self.bn_axis if train else None,
        )
        x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="conv_init")(x)
        x = nn.relu(norm(name="bn_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        seg = None
        for i, size in enumerate(self.stages):
            for j in range(size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = Bottleneck(self.width * 2**i, conv=conv, norm=norm, strides=strides)(x)
            if i == 1 and return_seg and self.seg_classes:
                y = nn.relu(norm(name="seg_bn")(conv(self.width * 4, (3, 3), name="seg_conv")(x)))
                seg = nn.Conv(self.seg_classes, (1, 1), dtype=self.dtype, name="seg_head")(y)
        x = jnp.mean(x, axis=(1, 2))
        if self.use_age:
            if age_days is None:
                raise ValueError("this model uses age: pass age_days")
            age = (age_days.astype(jnp.float32) / 365.25 - AGE_CENTER_YEARS) / AGE_SCALE_YEARS
            x = jnp.concatenate([x, age[:, None]], axis=-1)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return (logits, seg) if return_seg else logits
