import jax
import numpy as np
import pytest
from flax import jax_utils

from radpath.train.loop import (
    AXIS,
    TrainState,
    _as_pmap_output,
    _pmapped_train_step,
    count_compiles,
    epoch_batches,
    fit,
    init_variables,
    make_model,
    make_optimizer,
    predict_proba,
)


def test_two_cpu_devices_are_configured():
    assert jax.local_device_count() >= 2, "tests/conftest.py sets XLA_FLAGS for two CPU devices"


@pytest.mark.parametrize("devices", [1, 2])
def test_fit_on_one_and_two_devices(examples, tiny_config, devices):
    result = fit(examples, tiny_config, devices=devices, progress=False)
    assert result.completed and len(result.history) == 2
    assert all(h["devices"] == devices and np.isfinite(h["loss"]) for h in result.history)
    probs = predict_proba(result.variables, tiny_config, examples)
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_batch_must_split_evenly(examples, tiny_config):
    with pytest.raises(ValueError, match="does not split evenly over 2 devices"):
        fit(examples, tiny_config.replace(batch_size=3), devices=2, progress=False)


def test_no_recompilation_after_the_first_step(examples, tiny_config):
    result = fit(examples, tiny_config.replace(epochs=3), devices=2, progress=False)
    assert [h["compilations"] for h in result.history[1:]] == [0, 0]


def _two_steps_compiles(state, step, batch, keys):
    state, _ = step(state, *batch, keys)
    with count_compiles() as compiles:
        step(state, *batch, keys)
    return len(compiles)


def test_pmapped_identity_is_what_prevents_the_recompile(examples, tiny_config):
    """The pitfall is real (plain replicate -> step 2 compiles again) and the fix removes it."""
    config = tiny_config.replace(seed=123)  # a config no other test compiled
    devs = jax.local_devices()[:2]
    variables = init_variables(config)

    def make():
        return TrainState.create(
            apply_fn=make_model(config, AXIS).apply,
            params=variables["params"],
            tx=make_optimizer(config, 3),
            batch_stats=variables["batch_stats"],
        )

    batch = next(epoch_batches(examples, config, 0, 2))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    step = _pmapped_train_step(config, tuple(devs))
    plain = _two_steps_compiles(jax_utils.replicate(make(), devs), step, batch, keys)
    fixed = _two_steps_compiles(_as_pmap_output(make(), devs), step, batch, keys)
    assert fixed == 0
    assert plain >= 1


def test_resume_gives_the_same_weights(examples, tiny_config, tmp_path):
    config = tiny_config.replace(epochs=3)
    straight = fit(examples, config, tmp_path / "a", devices=2, progress=False)
    first = fit(examples, config, tmp_path / "b", devices=2, progress=False, stop_after=1)
    assert not first.completed and len(first.history) == 1
    resumed = fit(examples, config, tmp_path / "b", devices=2, progress=False)
    assert resumed.completed and len(resumed.history) == 3
    for a, b in zip(jax.tree.leaves(straight.variables), jax.tree.leaves(resumed.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_batches_are_class_balanced(tiny_config):
    from tests.train.conftest import fake_examples

    ex = fake_examples(60)
    ex.labels[:] = np.r_[np.zeros(40), np.ones(14), np.full(6, 2)].astype(np.int32)  # imbalanced
    cfg = tiny_config.replace(batch_size=60)
    counts = np.zeros(3)
    for epoch in range(20):
        for _, labels, _, _, _ in epoch_batches(ex, cfg, epoch, 2):
            counts += np.bincount(labels.ravel(), minlength=3)
    frac = counts / counts.sum()
    assert np.all(np.abs(frac - 1 / 3) < 0.05), frac


def test_training_learns_an_easy_signal(tiny_config):
    from tests.train.conftest import fake_examples

    ex = fake_examples(24, seed=3)
    for i in range(24):
        ex.images[i, ..., 0] = np.float16(ex.labels[i] * 3)
    result = fit(
        ex, tiny_config.replace(epochs=12, batch_size=8, rotate_degrees=0, noise_std=0), devices=2, progress=False
    )
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    probs = predict_proba(result.variables, tiny_config, ex, tta=False)
    assert (probs.argmax(1) == ex.labels).mean() >= 0.6


@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 2), (1, 11), (2, 1), (3, 5), (30, 11)])
def test_schedule_works_for_any_length(tiny_config, epochs, steps):
    """Issue 16 item 6: `--epochs 1` died in optax (warm-up longer than the run)."""
    from radpath.train.loop import lr_schedule

    cfg = tiny_config.replace(epochs=epochs, warmup_epochs=2)
    lrs = np.array([float(lr_schedule(cfg, steps)(s)) for s in range(epochs * steps)])
    assert np.isfinite(lrs).all() and (lrs[1:] > 0).all() and lrs.max() <= cfg.learning_rate + 1e-9


def test_one_epoch_with_the_default_warm_up_trains(examples, tiny_config):
    result = fit(examples, tiny_config.replace(epochs=1, warmup_epochs=2, batch_size=12), devices=2, progress=False)
    assert result.completed and np.isfinite(result.history[0]["loss"])


def test_auxiliary_segmentation_head_trains_and_is_left_out_of_the_served_model(tiny_config):
    from tests.train.conftest import fake_examples

    ex = fake_examples(12)
    ex.seg = np.zeros((12, 3, 224, 224, 2), np.uint8)  # [cases, offsets, H, W, views]
    ex.seg[:, :, 80:140, 90:150] = (ex.labels % 3 + 1)[:, None, None, None, None]
    cfg = tiny_config.replace(seg_weight=1.0)
    result = fit(ex, cfg, devices=2, progress=False)
    assert result.completed and all(np.isfinite(h["loss"]) for h in result.history)
    assert "seg_head" in result.variables["params"]
    logits = make_model(cfg).apply(result.variables, ex.images[:2, 1].astype(np.float32), None, train=False)
    assert logits.shape == (2, 3)  # no segmentation output at inference
    with pytest.raises(ValueError, match="needs ground-truth masks"):
        fit(fake_examples(12), cfg, devices=2, progress=False)


def test_region_statistics_read_the_image_inside_each_predicted_part():
    """Where the seg head is sure of a part, its statistics are that part's mean, spread and share."""
    import jax.numpy as jnp

    from radpath.train.resnet import region_statistics

    b, views, seqs, parts = 1, 2, 4, 4
    image = np.zeros((b, 32, 32, views * seqs), np.float32)
    image[:, :16] = 3.0  # the top half is bright in every channel
    logits = np.full((b, 4, 4, views * parts), -30.0, np.float32)  # 8 x 8 pixel cells
    for v in range(views):
        logits[:, :2, :, v * parts + 3] = 30.0  # top half: part 3 ("enhancing")
        logits[:, 2:, :, v * parts + 0] = 30.0  # bottom half: part 0 (background)
    stats = np.asarray(region_statistics(jnp.asarray(image), jnp.asarray(logits), views))
    mean = stats[0, : views * parts * seqs].reshape(views, parts, seqs)
    std = stats[0, views * parts * seqs : 2 * views * parts * seqs].reshape(views, parts, seqs)
    share = stats[0, 2 * views * parts * seqs :].reshape(views, parts)
    np.testing.assert_allclose(mean[:, 3], 3.0 * 8 / 9, rtol=1e-4)  # 8 cells and one pseudo-cell of 0
    np.testing.assert_allclose(mean[:, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(share[:, 3], 0.5, rtol=1e-5) and np.testing.assert_allclose(share[:, 1], 0, atol=1e-6)
    assert (std >= 0).all() and std[:, 0].max() < 0.01


def test_region_statistics_count_dark_specks_pixel_by_pixel():
    """A speck smaller than a head cell counts in the dark share; the other statistics are unchanged."""
    import jax.numpy as jnp

    from radpath.train.resnet import region_statistics

    b, views, seqs, parts = 1, 2, 4, 4
    image = np.zeros((b, 32, 32, views * seqs), np.float32)
    image[:, :16] = 3.0
    image[:, 0, 0:4, 0] = -4.0  # 4 dark pixels in one 8 x 8 cell, view 0, first sequence
    logits = np.full((b, 4, 4, views * parts), -30.0, np.float32)
    for v in range(views):
        logits[:, :2, :, v * parts + 3] = 30.0
        logits[:, 2:, :, v * parts + 0] = 30.0
    n = views * parts * seqs
    plain = np.asarray(region_statistics(jnp.asarray(image), jnp.asarray(logits), views))
    dark = np.asarray(region_statistics(jnp.asarray(image), jnp.asarray(logits), views, dark=True))
    assert plain.shape == (1, 2 * n + views * parts) and dark.shape == (1, 3 * n + views * parts)
    np.testing.assert_allclose(dark[0, : 2 * n], plain[0, : 2 * n], rtol=1e-6)
    np.testing.assert_allclose(dark[0, 3 * n :], plain[0, 2 * n :], rtol=1e-6)
    share = dark[0, 2 * n : 3 * n].reshape(views, parts, seqs)
    np.testing.assert_allclose(share[0, 3, 0], (4 / 64) / 9, rtol=1e-4)  # 8 cells and one pseudo-cell
    assert share[0, 3, 1:].max() == 0 and share[0, :3].max() < 1e-6 and share[1].max() == 0
    np.testing.assert_allclose(  # the speck lowers the part's mean by little: the share is what sees it
        plain[0, :n].reshape(views, parts, seqs)[0, 3, 0], (8 * 3.0 - 4 * 7.0 / 64) / 9, rtol=1e-4
    )


def test_region_statistics_say_where_each_part_lies_in_the_brain_view():
    """A part at the brain's front edge has a small row, a large distance from the midline and lies on the
    rim; one at the brain's centre lies mid-way, on the midline, off the rim. Only the brain view counts."""
    import jax.numpy as jnp

    from radpath.train.resnet import region_statistics

    views, seqs, parts, cells = 2, 4, 4, 10  # 8 x 8 pixel cells
    image = np.zeros((2, 8 * cells, 8 * cells, views * seqs), np.float32)
    image[:, 8:-8, 8:-8] = 1.0  # the brain: every cell but the outer ring (background is exactly 0)
    logits = np.full((2, cells, cells, views * parts), -30.0, np.float32)
    logits[..., 0::parts] = 30.0  # normal brain everywhere ...
    logits[0, 1:3, 1:3, 3], logits[0, 1:3, 1:3, 0] = 30.0, -30.0  # ... but case 0: front left corner of the brain
    logits[1, 4:6, 4:6, 3], logits[1, 4:6, 4:6, 0] = 30.0, -30.0  # case 1: the brain's centre
    logits[:, 4:6, 4:6, parts + 3] = 30.0  # the tumour view's parts must not move the location
    plain = np.asarray(region_statistics(jnp.asarray(image), jnp.asarray(logits), views))
    located = np.asarray(region_statistics(jnp.asarray(image), jnp.asarray(logits), views, location=True))
    n = 2 * views * parts * seqs
    assert located.shape == (2, plain.shape[1] + 3 * parts)
    np.testing.assert_allclose(located[:, :n], plain[:, :n], rtol=1e-6)
    where = located[:, n : n + 3 * parts].reshape(2, parts, 3) * 5 / 4  # 4 cells and one pseudo-cell of 0
    row, off_mid, rim = where[:, 3, 0], where[:, 3, 1], where[:, 3, 2]
    np.testing.assert_allclose(row, [0.2, 0.5], atol=1e-5)
    np.testing.assert_allclose(off_mid, [0.3, 0.05], atol=1e-5)  # cells 4 and 5 straddle the midline
    np.testing.assert_allclose(rim, [1.0, 0.0], atol=1e-5)


def test_speck_map_finds_small_foci_dark_on_t2_and_flair_only():
    """A 2 x 2 focus dark on FLAIR and T2 inside a bright lesion is a speck; one dark on FLAIR only (as
    cerebrospinal fluid is) is not, nor is the lesion's edge or a focus wider than the window."""
    import jax.numpy as jnp

    from radpath.contract.model_io import CHANNELS
    from radpath.train.resnet import SPECK_WINDOW, speck_map

    flair, t2 = CHANNELS.index("flair"), CHANNELS.index("t2")
    image = np.zeros((1, 64, 64, 2 * len(CHANNELS)), np.float32)
    image[:, 8:56, 8:56] = 4.0  # a bright lesion in every channel and both views
    image[:, 20:22, 20:22, [flair, t2]] = -1.0  # calcification-like: dark on both
    image[:, 40:42, 20:22, flair] = -1.0  # fluid-like: dark on FLAIR only
    wide = SPECK_WINDOW + 2
    image[:, 30 : 30 + wide, 40 : 40 + wide, [flair, t2]] = -1.0  # a dark area, not a speck
    found = np.asarray(speck_map(jnp.asarray(image), views=2))
    assert found.shape == (1, 64, 64, 2)
    assert found[0, 20:22, 20:22, 0].all() and found[0, :, :, 0].sum() == 4
    assert found[0, :, :, 1].sum() == 0  # the second view's channels are left as they were: bright, no specks


def test_region_pool_trains_runs_at_inference_and_needs_the_seg_head(tiny_config):
    from radpath.train.config import ConfigError
    from tests.train.conftest import fake_examples

    ex = fake_examples(12)
    ex.seg = np.zeros((12, 3, 224, 224, 2), np.uint8)
    ex.seg[:, :, 80:140, 90:150] = (ex.labels % 3 + 1)[:, None, None, None, None]
    cfg = tiny_config.replace(
        seg_weight=1.0, region_pool=True, region_dark=True, region_location=True, region_specks=True
    )
    result = fit(ex, cfg, devices=2, progress=False)
    assert result.completed and all(np.isfinite(h["loss"]) for h in result.history)
    assert {"seg_head", "region_bn"} <= set(result.variables["params"])
    x = ex.images[:2, 1].astype(np.float32)
    logits = make_model(cfg).apply(result.variables, x, None, train=False)
    assert logits.shape == (2, 3) and np.isfinite(np.asarray(logits)).all()
    moved = x.copy()
    moved[..., 90:150, :] += 5.0  # change the image only where the parts are: the answer must move
    assert np.abs(np.asarray(make_model(cfg).apply(result.variables, moved, None, train=False)) - logits).max() > 0
    with pytest.raises(ConfigError, match="region_pool needs the segmentation head"):
        tiny_config.replace(region_pool=True)
    with pytest.raises(ConfigError, match="region_dark adds to the region statistics"):
        tiny_config.replace(seg_weight=1.0, region_dark=True)
    with pytest.raises(ConfigError, match="region_specks adds to the region statistics"):
        tiny_config.replace(seg_weight=1.0, region_specks=True)
    with pytest.raises(ConfigError, match="region_location adds to the region statistics"):
        tiny_config.replace(seg_weight=1.0, region_location=True)


def test_feature_dropout_acts_in_training_only(tiny_config):
    from radpath.contract.model_io import IMAGE_SHAPE
    from radpath.train.config import ConfigError

    cfg = tiny_config.replace(feature_dropout=0.5)
    model = make_model(cfg)
    variables = init_variables(cfg)
    x = np.random.default_rng(0).normal(size=(2, *IMAGE_SHAPE)).astype(np.float32)

    def train_logits(key: int):
        out, _ = model.apply(
            variables, x, None, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(key)}
        )
        return np.asarray(out)

    assert np.abs(train_logits(0) - train_logits(1)).max() > 0  # other features dropped
    np.testing.assert_array_equal(model.apply(variables, x, None), model.apply(variables, x, None))
    with pytest.raises(ConfigError, match="feature_dropout must be in"):
        tiny_config.replace(feature_dropout=1.0)


def test_age_prior_init_starts_the_head_where_age_alone_stands(tiny_config):
    """With the image weights of the head zeroed, the started model answers what the age-only logistic
    regression fitted on the same cases answers."""
    from radpath.contract.model_io import IMAGE_SHAPE
    from radpath.train.baselines import age_features, fit_logistic, predict_logistic
    from radpath.train.config import ConfigError
    from radpath.train.loop import with_age_prior

    cfg = tiny_config.replace(use_age=True, age_prior_init=True)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    ages = (np.array([35.0, 45.0, 65.0])[labels] + rng.normal(0, 8, 60)) * 365.25
    variables = with_age_prior(init_variables(cfg), ages, labels)
    kernel = np.array(variables["params"]["head"]["kernel"])
    kernel[:-1] = 0.0  # the images say nothing
    variables["params"]["head"]["kernel"] = kernel
    test_ages = np.array([30.0, 50.0, 80.0]) * 365.25
    x = np.zeros((3, *IMAGE_SHAPE), np.float32)
    got = jax.nn.softmax(make_model(cfg).apply(variables, x, test_ages.astype(np.float32)))
    want = predict_logistic(fit_logistic(age_features(ages), labels), age_features(test_ages))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    assert want[2, 2] > 0.8 and want[0, 0] > 0.6  # the fit itself says something
    with pytest.raises(ConfigError, match="set use_age=true too"):
        tiny_config.replace(age_prior_init=True)
