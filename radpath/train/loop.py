"""The training loop: optax, data-parallel with `jax.pmap` over all (or N) local devices.

- The global batch splits evenly over the devices; gradients are averaged with `lax.pmean` over the
  device axis, BatchNorm batch statistics are computed across devices (`axis_name`) and the running
  statistics are averaged too, so every replica holds identical state.
- Known pitfall avoided: state from `flax.jax_utils.replicate` carries a different sharding than
  pmap's outputs, so the second step would compile again (21 s for ResNet50 on a CPU). The
  replicated state goes once through a pmapped identity (`_as_pmap_output`); a test counts compiles.
- Class-balanced batches: cases are drawn with probability inversely proportional to their class
  count (the real release is G 133 / A 54 / O 34). Augmentation runs on the devices inside the
  step: one random neighbouring slice per case (chosen on the host), left-right flip, small rotation
  and scale, per-channel intensity scale/shift and noise inside the brain.
- Determinism and resume: the batch order of epoch e and the augmentation keys of step s derive
  from (seed, e) and (seed, s) only, and a checkpoint (flax msgpack, written atomically) is saved
  after every epoch, so a run interrupted and resumed ends with the same weights as one that was not.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import jax_utils, serialization
from flax.training import train_state
from jax import lax
from tqdm import tqdm

from radpath.contract.model_io import (
    CHANNELS,
    IMAGE_SHAPE,
    NUM_CLASSES,
    TUMOR_STATS,
    VIEWS,
    fill_ages,
    split_views,
    tta_offsets,
    tta_views,
)

from .config import TrainConfig
from .examples import SEG_CLASSES, Examples
from .fusion import FUSION_KEY, fused_apply, placeholder, with_fusion
from .resnet import AGE_CENTER_YEARS, AGE_SCALE_YEARS, ResNet

log = logging.getLogger(__name__)
AXIS = "batch"


class TrainState(train_state.TrainState):
    batch_stats: Any = None


@dataclass
class FitResult:
    variables: dict
    history: list[dict]
    completed: bool


@functools.lru_cache(maxsize=16)
def make_model(config: TrainConfig, bn_axis: str | None = None) -> ResNet:
    """Cached: `model.apply` is part of the training state's structure, so the same module object
    lets cross-validation folds reuse the compiled step."""
    return ResNet(
        stages=tuple(config.stages),
        width=config.width,
        num_classes=NUM_CLASSES,
        use_age=config.use_age,
        bn_axis=bn_axis,
        seg_classes=len(VIEWS) * SEG_CLASSES if config.seg_weight > 0 else 0,
        region_views=len(VIEWS) if config.region_pool else 0,
        region_dark=config.region_dark,
        region_location=config.region_location,
        region_specks=config.region_specks,
        feature_dropout=config.feature_dropout,
        use_tumor_stats=config.tumor_stats,
        variant=config.resnet_variant,
        dtype=jnp.dtype(config.compute_dtype) if bn_axis else jnp.float32,  # evaluation and export: float32
    )


def init_variables(config: TrainConfig) -> dict:
    model = make_model(config)
    x = jnp.zeros((1,) + IMAGE_SHAPE, jnp.float32)
    seg = config.seg_weight > 0  # create the segmentation head's parameters too
    stats = jnp.zeros((1, len(TUMOR_STATS)), jnp.float32) if config.tumor_stats else None
    variables = dict(
        model.init(
            jax.random.PRNGKey(config.seed),
            x,
            jnp.zeros((1,), jnp.float32),
            train=False,
            return_seg=seg,
            tumor_stats=stats,
        )
    )
    if config.stats_fusion > 0:  # the pooled reader's slots (`train.fusion`), fitted when the fit ends
        variables[FUSION_KEY] = placeholder(config)
    return variables


def with_age_prior(variables: dict, ages_days: np.ndarray, labels: np.ndarray) -> dict:
    """`variables` with the class head's age weights set to those of the age-only logistic regression
    fitted on these (training) cases, in the head's age units.

    Why: started near zero, the age weights stay small (measured: 6-7 times weaker than the logistic
    regression's) because the images fit the training cases before age is needed, and then the model
    calls a non-enhancing tumour of an 80-year-old an astrocytoma. Starting from what age alone says,
    the images have to add to it."""
    from .baselines import age_features, fit_logistic

    fitted = fit_logistic(age_features(ages_days), labels)
    coef = np.asarray(fitted["coef"], np.float64)[0] / float(np.asarray(fitted["scale"])[0])  # per year
    head = dict(variables["params"]["head"])
    kernel = np.array(head["kernel"])
    kernel[-1] = coef * AGE_SCALE_YEARS  # the model's age input is (years - AGE_CENTER_YEARS) / AGE_SCALE_YEARS
    bias = np.array(head["bias"]) + np.asarray(fitted["intercept"]) + coef * (AGE_CENTER_YEARS - fitted["mean"][0])
    head.update(kernel=jnp.asarray(kernel, head["kernel"].dtype), bias=jnp.asarray(bias - bias.mean(), jnp.float32))
    return {**variables, "params": {**variables["params"], "head": head}}


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up then cosine decay to 1 % of the peak. The warm-up never takes more than half
    the run, so any length works (`--epochs 1` on a tiny cohort included): no zero-length decay."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = max(min(config.warmup_epochs * steps_per_epoch, total // 2), 1)  # >= 1 step: starts at 0
    if total < 2:
        return optax.constant_schedule(config.learning_rate)
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, warmup, total, end_value=config.learning_rate * 0.01
    )


@functools.lru_cache(maxsize=8)
def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Cached: the optimizer is part of the state's tree structure, so reusing the same object lets
    later folds reuse the compiled training step."""
    schedule = lr_schedule(config, steps_per_epoch)

    def decay_mask(params):  # weight decay on kernels only
        return jax.tree.map(lambda p: p.ndim > 1, params)

    return optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask)


def select_devices(n: int | None) -> list:
    devices = jax.local_devices()
    if n is None:
        return devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"--devices {n}: this machine has {len(devices)} local device(s) ({devices[0].platform})")
    return devices[:n]


# ------------------------------------------------------------------ augmentation (on device)
def augment(rng: jax.Array, x: jax.Array, config: TrainConfig) -> jax.Array:
    """x float32 [b, H, W, C] -> augmented copy; background stays exactly 0."""
    return augment_pair(rng, x, None, config)[0]


def augment_pair(
    rng: jax.Array, x: jax.Array, seg: jax.Array | None, config: TrainConfig
) -> tuple[jax.Array, jax.Array | None]:
    """`augment`, with an optional segmentation target seg float32 [b, H, W, V * K] (one-hot per view)
    moved by the same flip, rotation and scale (bilinear: soft labels at the edges).

    Every view is centred in the image, so one flip, rotation and zoom about the centre moves each view
    about its own centre: the views stay one consistent picture of the slice."""
    b, h, w, c = x.shape
    k_flip, k_rot, k_scale, k_gain = jax.random.split(rng, 4)
    flip = jax.random.bernoulli(k_flip, 0.5, (b,))
    x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    if seg is not None:
        seg = jnp.where(flip[:, None, None, None], seg[:, :, ::-1, :], seg)
    angle = jnp.deg2rad(config.rotate_degrees) * jax.random.uniform(k_rot, (b,), minval=-1, maxval=1)
    scale = 1 + config.scale_range * jax.random.uniform(k_scale, (b,), minval=-1, maxval=1)
    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32) - (h - 1) / 2, jnp.arange(w, dtype=jnp.float32) - (w - 1) / 2, indexing="ij"
    )

    def warp(img, a, s):  # img [H, W, C]: rotate by a, zoom by s about the centre
        cos, sin = jnp.cos(a) / s, jnp.sin(a) / s
        src_r = cos * rows - sin * cols + (h - 1) / 2
        src_c = sin * rows + cos * cols + (w - 1) / 2

        def sample(ch):
            return jax.scipy.ndimage.map_coordinates(ch, [src_r, src_c], order=1, mode="constant")

        return jax.vmap(sample, in_axes=2, out_axes=2)(img)

    x = jax.vmap(warp)(x, angle, scale)
    if seg is not None:
        seg = jax.vmap(warp)(seg, angle, scale)
        per_view = seg.reshape(*seg.shape[:3], len(VIEWS), -1)
        per_view = per_view.at[..., 0].add(1.0 - per_view.sum(axis=-1))  # outside the source grid: background
        seg = per_view.reshape(seg.shape)
    views = split_views(x)
    inside = jnp.any(views != 0, axis=-1, keepdims=True)  # each view's own brain
    changed = split_views(intensity_augment(k_gain, x, config))
    return jnp.where(inside, changed, 0.0).reshape(x.shape), seg


def _gaussian_blur(x: jax.Array, sigma: float = 1.2) -> jax.Array:
    """x [b, H, W, C] blurred in-plane by a separable Gaussian (7 taps), channel by channel."""
    taps = jnp.arange(-3, 4, dtype=jnp.float32)
    k = jnp.exp(-0.5 * (taps / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[-1]
    dn = ("NHWC", "HWIO", "NHWC")
    kr = jnp.tile(k.reshape(7, 1, 1, 1), (1, 1, 1, c))
    kc = jnp.tile(k.reshape(1, 7, 1, 1), (1, 1, 1, c))
    y = lax.conv_general_dilated(x, kr, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=c)
    return lax.conv_general_dilated(y, kc, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=c)


def intensity_augment(rng: jax.Array, x: jax.Array, config: TrainConfig) -> jax.Array:
    """Domain randomisation of intensities, per image and sequence (x [b, H, W, C], robust z-scores;
    a sequence gets the same curve, gain and offset in every view).

    Real scans differ from any training set in contrast mapping, conspicuity, resolution and noise:
    a random monotone curve (keeps "brighter than brain" brighter, changes how much), gain and
    offset, a random amount of blur and random-level noise. The caller restores the zero background.
    """
    b, h, w, c = x.shape
    k_curve, k_gain, k_bias, k_blur, k_level, k_noise = jax.random.split(rng, 6)

    def draw(key):  # one draw per sequence, the same in every view (one scan): tiled view-major like the channels
        return jnp.tile(
            jax.random.uniform(key, (b, 1, 1, len(CHANNELS)), minval=-1, maxval=1), (1, 1, 1, c // len(CHANNELS))
        )

    curve = config.contrast_curve * draw(k_curve)
    x = x + curve * 2.0 * jnp.tanh(x / 2.0)  # monotone for |curve| < 1
    j = config.intensity_jitter
    gain = 1 + j * draw(k_gain)
    bias = j * draw(k_bias)
    x = x * gain + bias
    if config.blur > 0:
        mix = config.blur * jax.random.uniform(k_blur, (b, 1, 1, 1))
        x = (1 - mix) * x + mix * _gaussian_blur(x)
    level = config.noise_std * jax.random.uniform(k_level, (b, 1, 1, 1))
    return x + level * jax.random.normal(k_noise, x.shape)


# ------------------------------------------------------------------ steps
@functools.lru_cache(maxsize=8)
def _pmapped_train_step(config: TrainConfig, devices: tuple):
    """One compiled step per (config, devices): cross-validation folds share it."""
    return jax.pmap(_make_train_step(config), axis_name=AXIS, devices=list(devices), donate_argnums=(0,))


def _make_train_step(config: TrainConfig):
    with_seg = config.seg_weight > 0

    def step(state: TrainState, images, labels, ages, stats, seg, rng):
        onehot = None
        if with_seg:  # [b, H, W, V] labels -> [b, H, W, V * K] one-hot, moved with the image
            onehot = jax.nn.one_hot(seg, SEG_CLASSES, dtype=jnp.float32).reshape(*seg.shape[:3], -1)
        images, seg_soft = augment_pair(rng, images.astype(jnp.float32), onehot, config)

        def loss_fn(params):
            out, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                ages,
                train=True,
                return_seg=with_seg,
                tumor_stats=stats,
                mutable=["batch_stats"],
                rngs={"dropout": jax.random.fold_in(rng, 1)},  # the augmentation keeps `rng` itself
            )
            logits, seg_logits = out if with_seg else (out, None)
            targets = optax.smooth_labels(jax.nn.one_hot(labels, NUM_CLASSES), config.label_smoothing)
            loss = optax.softmax_cross_entropy(logits, targets).mean()
            if with_seg:
                loss = loss + config.seg_weight * seg_loss(seg_logits, seg_soft)
            return loss, (logits, updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = lax.pmean(grads, AXIS)
        state = state.apply_gradients(grads=grads, batch_stats=lax.pmean(updates["batch_stats"], AXIS))
        metrics = {
            "loss": lax.pmean(loss, AXIS),
            "accuracy": lax.pmean(jnp.mean(jnp.argmax(logits, -1) == labels), AXIS),
        }
        return state, metrics

    return step


def seg_loss(seg_logits: jax.Array, target: jax.Array) -> jax.Array:
    """Soft-label cross-entropy of the segmentation head [b, h, w, V * K] against the one-hot target
    [b, H, W, V * K] averaged down to the head's grid (the share of each label in each cell), per view."""
    b, h, w, k = seg_logits.shape
    fy, fx = target.shape[1] // h, target.shape[2] // w
    pooled = target[:, : h * fy, : w * fx].reshape(b, h, fy, w, fx, k).mean(axis=(2, 4))
    per_view = (b, h, w, len(VIEWS), k // len(VIEWS))  # one softmax per view
    return optax.softmax_cross_entropy(seg_logits.reshape(per_view), pooled.reshape(per_view)).mean()


def _as_pmap_output(state: TrainState, devices: list) -> TrainState:
    """Replicate, then pass through a pmapped identity so the state has pmap's output sharding and
    the second training step reuses the first step's compiled program instead of compiling again."""
    return jax.pmap(lambda s: s, axis_name=AXIS, devices=devices)(jax_utils.replicate(state, devices))


@contextmanager
def count_compiles() -> Iterator[list]:
    """Collects one entry per XLA backend compilation while active (used by tests and logs)."""
    events: list = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# ------------------------------------------------------------------ batches (host)
def epoch_batches(train: Examples, config: TrainConfig, epoch: int, n_devices: int):
    """Class-balanced batches of epoch `epoch`, deterministic in (seed, epoch)."""
    n = len(train.labels)
    if config.batch_size % n_devices:
        raise ValueError(f"--batch-size {config.batch_size} does not split evenly over {n_devices} devices")
    steps = max(1, math.ceil(n / config.batch_size))
    rng = np.random.default_rng([config.seed, epoch, 7])
    counts = np.bincount(train.labels, minlength=NUM_CLASSES).astype(np.float64)
    p = 1.0 / counts[train.labels]
    p /= p.sum()
    idx = rng.choice(n, size=steps * config.batch_size, replace=True, p=p)
    offset = rng.integers(0, len(train.offsets), size=idx.size)
    per_dev = config.batch_size // n_devices
    for s in range(steps):
        sl = slice(s * config.batch_size, (s + 1) * config.batch_size)
        images = train.images[idx[sl], offset[sl]].reshape((n_devices, per_dev) + IMAGE_SHAPE)
        labels = train.labels[idx[sl]].reshape(n_devices, per_dev)
        ages = fill_ages(train.ages_days[idx[sl]], len(idx[sl])).reshape(n_devices, per_dev)
        stats = None
        if config.tumor_stats:
            stats = tumor_stats_of(train, idx[sl]).reshape(n_devices, per_dev, -1)
        seg = None
        if config.seg_weight > 0:
            seg = train.seg[idx[sl], offset[sl]].reshape((n_devices, per_dev, *IMAGE_SHAPE[:2], len(VIEWS)))
        yield images, labels, ages, stats, seg


def tumor_stats_of(examples: Examples, idx: np.ndarray | slice) -> np.ndarray:
    """float32 tumour statistics of `examples[idx]`, refused in one line when they were not built."""
    if examples.tumor_stats is None:
        raise ValueError("this model reads the tumour statistics: build the examples with build_examples")
    return np.asarray(examples.tumor_stats[idx], np.float32)


# ------------------------------------------------------------------ fit
def _save_checkpoint(ckpt_dir: Path, state: TrainState, epoch: int, history: list[dict]) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "state": serialization.to_state_dict(jax.device_get(jax.tree.map(lambda x: x[0], state))),
        "epoch": epoch,
        "history": json.dumps(history),
    }
    path = ckpt_dir / f"epoch_{epoch:04d}.msgpack"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    tmp.replace(path)
    for old in sorted(ckpt_dir.glob("epoch_*.msgpack"))[:-2]:
        old.unlink()


def _latest_checkpoint(ckpt_dir: Path | None) -> Path | None:
    if ckpt_dir is None or not ckpt_dir.is_dir():
        return None
    found = sorted(ckpt_dir.glob("epoch_*.msgpack"))
    return found[-1] if found else None


def fit(
    train: Examples,
    config: TrainConfig,
    ckpt_dir: Path | None = None,
    devices: int | None = None,
    progress: bool = True,
    log_path: Path | None = None,
    stop_after: int | None = None,
) -> FitResult:
    """Train on `train` (labels required). Resumes from the latest checkpoint in `ckpt_dir`.

    `stop_after` ends this call after that many epochs in total (the run can be resumed later).
    """
    if (train.labels < 0).any():
        raise ValueError("every training case needs a class")
    if config.seg_weight > 0 and train.seg is None:
        raise ValueError(
            "seg_weight > 0 needs ground-truth masks (Segmentation/<ID>_seg.nii.gz, synthetic cohorts) for "
            "every training case; set seg_weight=0 for this cohort"
        )
    devs = select_devices(devices)
    n_dev = len(devs)
    steps_per_epoch = max(1, math.ceil(len(train.labels) / config.batch_size))
    model = make_model(config, bn_axis=AXIS)
    variables = init_variables(config)
    if config.init_weights:
        from .pretrained import load_variables

        variables, _ = load_variables(variables, config.init_weights, config)
    if config.age_prior_init:  # TrainConfig refuses it without use_age
        variables = with_age_prior(variables, train.ages_days, train.labels)
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=make_optimizer(config, steps_per_epoch),
        batch_stats=variables["batch_stats"],
    )
    history: list[dict] = []
    start_epoch = 0
    latest = _latest_checkpoint(ckpt_dir)
    if latest is not None:
        payload = serialization.msgpack_restore(latest.read_bytes())
        state = serialization.from_state_dict(state, payload["state"])
        start_epoch = int(payload["epoch"])
        history = json.loads(payload["history"])
        log.info("resuming from %s (epoch %d)", latest, start_epoch)
    state = _as_pmap_output(state, devs)
    p_step = _pmapped_train_step(config, tuple(devs))
    base_key = jax.random.PRNGKey(config.seed)
    end_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(start_epoch, end_epoch):
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "accuracy": 0.0}
        bar = tqdm(
            epoch_batches(train, config, epoch, n_dev),
            total=steps_per_epoch,
            disable=not progress,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="step",
            leave=False,
        )
        with count_compiles() as compiles:
            for s, (images, labels, ages, stats, seg) in enumerate(bar):
                keys = jax.random.split(jax.random.fold_in(base_key, epoch * steps_per_epoch + s), n_dev)
                state, metrics = p_step(state, images, labels, ages, stats, seg, keys)
                m = jax.device_get(jax.tree.map(lambda v: v[0], metrics))
                for k in sums:
                    sums[k] += float(m[k])
                bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{m['accuracy']:.2f}")
        seconds = time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / steps_per_epoch,
            "train_accuracy": sums["accuracy"] / steps_per_epoch,
            "seconds": round(seconds, 2),
            "images_per_second": round(steps_per_epoch * config.batch_size / seconds, 1),
            "devices": n_dev,
            "compilations": len(compiles),
        }
        history.append(record)
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{config.epochs}: loss {record['loss']:.4f} "
                f"train acc {record['train_accuracy']:.3f} ({record['images_per_second']} img/s)"
            )
        if ckpt_dir is not None:
            _save_checkpoint(ckpt_dir, state, epoch + 1, history)
    single = jax.device_get(jax.tree.map(lambda x: x[0], state))
    fitted = {"params": single.params, "batch_stats": single.batch_stats}
    completed = end_epoch >= config.epochs
    if completed:  # the pooled tumour-statistics reader, on the same training cases (`train.fusion`)
        fitted = with_fusion(fitted, config, train.tumor_stats, train.ages_days, train.labels)
    return FitResult(fitted, history, completed=completed)


# ------------------------------------------------------------------ prediction
@functools.lru_cache(maxsize=8)
def make_logits_fn(config: TrainConfig):
    apply = fused_apply(make_model(config).apply, config)

    @jax.jit
    def logits(variables, images, ages, stats=None):
        return apply(variables, images, ages, train=False, tumor_stats=stats)

    return logits


def predict_logits(
    variables: dict, config: TrainConfig, examples: Examples, batch: int = 32, tta: bool | None = None
) -> np.ndarray:
    """float32 [n, views, 3] logits (A, O, G) per test-time view: `contract.model_io.tta_views` (the
    client's views) with TTA, the centre slice alone without. Calibration fits its temperature on these."""
    tta = config.tta if tta is None else tta
    logits_fn = make_logits_fn(config)
    ks = [examples.offsets.index(o) for o in (tta_offsets(examples.offsets) if tta else (0,))]
    n_views = 2 * len(ks) if tta else 1
    ages = fill_ages(examples.ages_days, len(examples.labels))
    out = np.zeros((len(examples.labels), n_views, NUM_CLASSES), np.float32)
    for s in range(0, len(out), batch):
        slices = examples.images[s : s + batch][:, ks].astype(np.float32)  # [b, k, *IMAGE_SHAPE]
        views = tta_views(slices) if tta else slices
        stats = tumor_stats_of(examples, slice(s, s + batch)) if config.reads_tumor_stats else None  # one per case
        for v in range(n_views):
            out[s : s + batch, v] = np.asarray(
                logits_fn(variables, np.ascontiguousarray(views[:, v]), ages[s : s + batch], stats)
            )
    return out


def predict_proba(
    variables: dict,
    config: TrainConfig,
    examples: Examples,
    batch: int = 32,
    tta: bool | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """float32 [n, 3] class probabilities (A, O, G): the mean over the test-time views of
    softmax(logits / temperature), exactly what the served model and the client compute."""
    from .calibration import views_to_proba

    return views_to_proba(predict_logits(variables, config, examples, batch, tta), temperature).astype(np.float32)
