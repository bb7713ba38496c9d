"""ResNet50 in Flax (Linen), for [N, 224, 224, 8] MRI slices (two views of four sequences) and 3 classes.

Follows the Flax ImageNet example (bottleneck blocks [3, 4, 6, 3], zero-initialised last BatchNorm
scale of each block) with two changes: `width` (64 = the standard ResNet50) lets the same code train
a small variant quickly on a CPU, and `bn_axis` names the pmap axis over which BatchNorm statistics
are averaged in training (None outside pmap, e.g. for export, where running averages are used).
Optionally the patient's age enters next to the pooled image features (`use_age`), and an
auxiliary segmentation head (`seg_classes` > 0) reads the second stage's features (stride 8): trained
on the synthetic cohort's tumour masks, it points the encoder at the tumour and its sub-regions. It
is used in training only (`return_seg=True`) unless `region_views` > 0: then the class head also
reads the input's statistics inside the head's predicted parts (`region_statistics`), at inference too.

`variant` picks the layout, so that converted ImageNet weights (`train.pretrained`) compute exactly
what they computed in the framework that trained them; parameter names are the same in all three:
- "flax" (default): ResNet v1.5 as in the Flax ImageNet example; stride on the 3x3 convolution and
  "SAME" padding, so a stride-2 layer pads one pixel after the end only.
- "torchvision": ResNet v1.5 as torchvision's `resnet50`: the stride-2 3x3 convolutions and the stem's
  max pool pad one pixel on both sides.
- "keras": ResNet v1 as `keras.applications.ResNet50`: stride on the first 1x1 convolution, every
  convolution with a bias, BatchNorm epsilon 1.001e-5, max pool padded on both sides.
The three differ in the first pixel rows a stride-2 window sees, not in capacity or cost.

`dtype` is the compute dtype of convolutions and matrix products (parameters and BatchNorm
statistics stay float32).

Speed on a CPU: the gradient of a stride-2 convolution with respect to its input is a convolution over
a zero-dilated input ("lhs dilation"), which XLA:CPU does not hand to its fast convolution library
(YNNPACK) but runs as plain loops: in a ResNet50 training step the six of them took more time than all
other convolutions together. The bottlenecks' stride-2 convolutions are therefore computed as
equivalent stride-1 ones (`fast_conv`): a 1x1 one on every second pixel, a 3x3 one as a 2x2
convolution over 2x2 pixel blocks (space-to-depth), whose gradients are ordinary convolutions. And
1x1 convolutions, most of a bottleneck's work, run as matrix products over the channels: about twice
as fast forward and backward on XLA:CPU as its convolution, whose weight gradient transposes the
activations first. Same parameters, same results up to float rounding, on every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from radpath.contract.model_io import CHANNELS

from .config import RESNET50_STAGES as STAGES_RESNET50
from .config import RESNET_VARIANTS

AGE_CENTER_YEARS, AGE_SCALE_YEARS = 50.0, 15.0
BOTH_SIDES = ((1, 1), (1, 1))
"""Padding of one pixel on each side (PyTorch's and Keras' ZeroPadding2D(1) convention)."""


def fast_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, **kwargs):
    """`lax.conv_general_dilated` (NHWC, HWIO) in forms whose gradients XLA:CPU computes fast.

    - stride 2: a 1x1 kernel reads every second pixel; a k x k kernel becomes a ceil(k/2)^2 kernel over
      2x2 pixel blocks (space-to-depth; taps placed by row and column parity, zeros where k is odd);
    - 1x1: a matrix product over the channels (no layout transposes for its weight gradient).
    Dilated or grouped convolutions pass through unchanged.
    """
    undilated = all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
    if not undilated or kwargs.get("feature_group_count", 1) != 1 or tuple(window_strides) not in ((1, 1), (2, 2)):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, **kwargs)
    kh, kw = rhs.shape[:2]
    precision = kwargs.get("precision")
    if tuple(window_strides) == (1, 1):
        if kh == kw == 1 and padding in ("SAME", "VALID", ((0, 0), (0, 0)), [(0, 0), (0, 0)]):
            return lax.dot_general(lhs, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, **kwargs)
    pads = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), (2, 2), padding) if isinstance(padding, str) else padding
    out = [(n + lo + hi - k) // 2 + 1 for n, (lo, hi), k in zip(lhs.shape[1:3], pads, (kh, kw), strict=True)]
    blocks = [o + (k + 1) // 2 - 1 for o, k in zip(out, (kh, kw), strict=True)]  # 2x2 blocks each output reads
    # pad (or crop) so that the padded input is exactly 2 * blocks pixels: rows past that are never read
    ends = [2 * b - n - lo for b, n, (lo, _) in zip(blocks, lhs.shape[1:3], pads, strict=True)]
    x = lax.pad(
        lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), (pads[0][0], ends[0], 0), (pads[1][0], ends[1], 0), (0, 0, 0)]
    )
    if kh == kw == 1:
        return lax.dot_general(x[:, ::2, ::2], rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
    n, c = x.shape[0], x.shape[3]
    x = x.reshape(n, blocks[0], 2, blocks[1], 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, blocks[0], blocks[1], 4 * c)
    kb = ((kh + 1) // 2, (kw + 1) // 2)
    k = jnp.pad(rhs, [(0, 2 * kb[0] - kh), (0, 2 * kb[1] - kw), (0, 0), (0, 0)])
    k = k.reshape(kb[0], 2, kb[1], 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(kb[0], kb[1], 4 * c, -1)
    return lax.conv_general_dilated(x, k, (1, 1), "VALID", **kwargs)


class Bottleneck(nn.Module):
    filters: int
    conv: Callable[..., Any]
    norm: Callable[..., Any]
    strides: tuple[int, int] = (1, 1)
    variant: str = "flax"

    @nn.compact
    def __call__(self, x):
        residual = x
        first_strides, mid_strides = (self.strides, (1, 1)) if self.variant == "keras" else ((1, 1), self.strides)
        mid_padding = "SAME" if self.variant == "flax" else BOTH_SIDES
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1), first_strides)(x)))
        y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), mid_strides, padding=mid_padding)(y)))
        y = self.norm(scale_init=nn.initializers.zeros_init())(self.conv(self.filters * 4, (1, 1))(y))
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return nn.relu(residual + y)


DARK_Z = -1.0
"""A pixel darker than the brain's median by more than one robust spread: calcified specks on T2 and FLAIR,
the FLAIR-dark centre of a T2-FLAIR mismatch."""


RIM_CELLS = 2
"""`region_statistics(location=True)`: head cells (8 pixels each, about 7 mm of an adult brain view) from
the brain's edge that count as its rim, where the cortex is."""


SPECK_WINDOW = 7
"""`region_statistics(specks=True)`: side (pixels) of the morphological closing; darker features narrower
than this count as specks (a calcified focus zoomed in the tumour view spans 1-5 pixels)."""
SPECK_Z = 1.5
"""Robust z-scores by which a speck lies under its closing on both FLAIR and T2."""


def speck_map(image: jax.Array, views: int) -> jax.Array:
    """[b, H, W, views] 1 where a pixel is a small dark focus on both FLAIR and T2 (black top-hat: the
    morphological closing minus the image, over SPECK_Z on both). Calcified foci are dark on T2 and
    FLAIR; cerebrospinal fluid is dark on FLAIR but bright on T2, and a step edge has no top-hat."""
    b, hh, ww, _ = image.shape
    seqs = image.shape[-1] // views
    idx = [v * seqs + CHANNELS.index(s) for v in range(views) for s in ("flair", "t2")]
    x = image[..., jnp.array(idx)]
    k = SPECK_WINDOW
    pad = ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0))
    dilated = lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, 1, 1, 1), pad)
    closed = lax.reduce_window(dilated, jnp.inf, lax.min, (1, k, k, 1), (1, 1, 1, 1), pad)
    tophat = (closed - x).reshape(b, hh, ww, views, 2)
    return (tophat.min(axis=-1) > SPECK_Z).astype(image.dtype)


def _brain_rim(brain: jax.Array) -> jax.Array:
    """[b, h, w] 1 where a brain cell lies within RIM_CELLS cells of the brain's edge (or the grid's)."""
    r = RIM_CELLS
    padded = jnp.pad(brain, ((0, 0), (r, r), (r, r)))  # outside the grid is outside the brain
    inner = lax.reduce_window(padded, jnp.inf, lax.min, (1, 2 * r + 1, 2 * r + 1), (1, 1, 1), "VALID")
    return brain * (1.0 - inner)


def region_statistics(
    image: jax.Array,
    seg_logits: jax.Array,
    views: int,
    dark: bool = False,
    location: bool = False,
    specks: bool = False,
) -> jax.Array:
    """[b, views * parts * (k * sequences + 1)] statistics of `image` [b, H, W, views * sequences] inside
    the parts the segmentation head predicts (`seg_logits` [b, h, w, views * parts], a coarser grid):
    per view, part and sequence the mean and standard deviation of the robust z-scores weighted by the
    part's probability (k = 2), and per view and part its share of the view. Each head cell contributes
    its pixels' mean and mean square, so the spread includes the texture inside a cell.

    `dark`: also, per view, part and sequence, the share of the part's pixels darker than DARK_Z (k = 3),
    counted pixel by pixel: a few dark specks (the calcified foci of oligodendrogliomas) or a FLAIR-dark
    centre (a T2-FLAIR mismatch) move a bright part's mean or spread only a little.
    `location`: also, in the first view (the whole brain, `contract.model_io.VIEWS`), where each part lies:
    its mean row (0 = the brain's front, 1 = its back), its mean distance from the middle column (the
    midline; 0.5 = the view's side) and its share on the brain's rim (the cortex, `RIM_CELLS`). Frontal,
    cortical oligodendrogliomas and midline-crossing glioblastomas differ there, not in intensity.
    `specks`: also, per view and part, its share of `speck_map` pixels (small foci dark on T2 and FLAIR:
    the calcifications of oligodendrogliomas, which the parts' means and spreads barely register).
    Each option adds its columns before the shares: `specks` views * parts, `location` 3 * parts.
    An absent part gets one pseudo-cell of zeros, so its statistics are near 0, never NaN."""
    b, h, w, _ = seg_logits.shape
    fy, fx = image.shape[1] // h, image.shape[2] // w
    seqs = image.shape[-1] // views
    small = image[:, : h * fy, : w * fx].reshape(b, h, fy, w, fx, views, seqs)
    p = jax.nn.softmax(seg_logits.reshape(b, h, w, views, -1), axis=-1)  # [b, h, w, V, K]
    mass = p.sum(axis=(1, 2))  # [b, V, K]
    denom = mass[..., None] + 1.0  # one pseudo-pixel: an absent part has statistics near 0, not NaN

    def inside(per_pixel: jax.Array) -> jax.Array:  # [b, V, K, S]: weighted mean of a per-pixel value
        return jnp.einsum("bhwvk,bhwvs->bvks", p, per_pixel.mean(axis=(2, 4))) / denom

    mean, sq = inside(small), inside(small * small)
    std = jnp.sqrt(jnp.maximum(sq - mean * mean, 0.0) + 1e-6)
    stats = [mean.reshape(b, -1), std.reshape(b, -1)]
    if dark:
        stats.append(inside((small < DARK_Z).astype(small.dtype)).reshape(b, -1))
    if specks:
        found = speck_map(image[:, : h * fy, : w * fx], views).reshape(b, h, fy, w, fx, views, 1)
        stats.append(inside(found).reshape(b, -1))
    if location:
        first = p[:, :, :, 0]  # [b, h, w, K]: the brain view
        rows = (jnp.arange(h, dtype=p.dtype) + 0.5) / h
        off_mid = jnp.abs((jnp.arange(w, dtype=p.dtype) + 0.5) / w - 0.5)
        brain = (jnp.abs(small[:, :, :, :, :, 0]).max(axis=(2, 4, 5)) > 0).astype(p.dtype)  # background is 0
        at = [
            jnp.einsum("bhwk,h->bk", first, rows),
            jnp.einsum("bhwk,w->bk", first, off_mid),
            jnp.einsum("bhwk,bhw->bk", first, _brain_rim(brain)),
        ]
        stats.append((jnp.stack(at, axis=-1) / denom[:, 0]).reshape(b, -1))
    share = mass / (h * w)
    return jnp.concatenate([*stats, share.reshape(b, -1)], axis=-1)


class ResNet(nn.Module):
    """Logits [N, num_classes] from images [N, H, W, C] (and age in days [N] when `use_age`, the tumour
    statistics [N, len(TUMOR_STATS)] when `use_tumor_stats`).

    The pooled image features [N, 4 * 8 * width] are sown as ("intermediates", "features") for
    callers that ask for them (`mutable=["intermediates"]`), e.g. to compare with another framework.
    """

    stages: Sequence[int] = STAGES_RESNET50
    width: int = 64
    num_classes: int = 3
    use_age: bool = False
    bn_axis: str | None = None
    seg_classes: int = 0
    region_views: int = 0
    """> 0: the seg head's classes are this many views x parts, and the class head reads `region_statistics`."""
    region_dark: bool = False
    """`region_statistics` also counts each part's dark pixels."""
    region_location: bool = False
    """`region_statistics` also says where each part lies in the brain view."""
    region_specks: bool = False
    """`region_statistics` also counts each part's small T2- and FLAIR-dark foci."""
    feature_dropout: float = 0.0
    """Dropout on the pooled image features in training (needs a "dropout" rng then)."""
    use_tumor_stats: bool = False
    """The class head also reads `tumor_stats` [N, len(TUMOR_STATS)] (standardised by a BatchNorm)."""
    dtype: Any = jnp.float32
    variant: str = "flax"

    @nn.compact
    def __call__(self, x, age_days=None, train: bool = False, return_seg: bool = False, tumor_stats=None):
        if self.variant not in RESNET_VARIANTS:
            raise ValueError(f"ResNet variant {self.variant!r}: expected one of {RESNET_VARIANTS}")
        keras = self.variant == "keras"
        stem_conv = partial(nn.Conv, use_bias=keras, dtype=self.dtype)
        conv = partial(stem_conv, conv_general_dilated=fast_conv)
        norm = partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1.001e-5 if keras else 1e-5,
            dtype=self.dtype,
            axis_name=self.bn_axis if train else None,
        )
        image = x
        x = stem_conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="conv_init")(x)  # no input gradient
        x = nn.relu(norm(name="bn_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME" if self.variant == "flax" else BOTH_SIDES)
        seg = None
        for i, size in enumerate(self.stages):
            for j in range(size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = Bottleneck(self.width * 2**i, conv=conv, norm=norm, strides=strides, variant=self.variant)(x)
            if i == 1 and self.seg_classes and (return_seg or self.region_views):
                y = nn.relu(norm(name="seg_bn")(conv(self.width * 4, (3, 3), name="seg_conv")(x)))
                seg = nn.Conv(self.seg_classes, (1, 1), dtype=self.dtype, name="seg_head")(y).astype(jnp.float32)
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        self.sow("intermediates", "features", x)
        x = nn.Dropout(self.feature_dropout, deterministic=not train)(x)
        if self.region_views:
            if seg is None:
                raise ValueError("region_views needs the segmentation head (seg_classes > 0)")
            stats = region_statistics(
                image.astype(jnp.float32),
                seg,
                self.region_views,
                self.region_dark,
                self.region_location,
                self.region_specks,
            )
            x = jnp.concatenate([x, norm(name="region_bn")(stats).astype(jnp.float32)], axis=-1)
        if self.use_tumor_stats:
            if tumor_stats is None:
                raise ValueError("this model reads the tumour statistics: pass tumor_stats")
            stats = norm(name="tumor_stats_bn")(tumor_stats.astype(jnp.float32)).astype(jnp.float32)
            x = jnp.concatenate([x, stats], axis=-1)
        if self.use_age:  # last: `loop.with_age_prior` sets the head's last row
            if age_days is None:
                raise ValueError("this model uses age: pass age_days")
            age = (age_days.astype(jnp.float32) / 365.25 - AGE_CENTER_YEARS) / AGE_SCALE_YEARS
            x = jnp.concatenate([x, age[:, None]], axis=-1)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)
        return (logits, seg) if return_seg else logits
