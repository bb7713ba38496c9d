import numpy as np
import pytest

from radpath.contract.model_io import IMAGE_SHAPE
from radpath.train.loop import init_variables
from radpath.train.pretrained import load_partial
from radpath.train.splits import stratified_holdout, stratified_kfold


def test_kfold_partitions_and_stratifies():
    labels = np.array([2] * 133 + [0] * 54 + [1] * 34)
    folds = stratified_kfold(labels, 5, seed=0)
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen.tolist()) == list(range(len(labels)))
    for tr, va in folds:
        assert not set(tr) & set(va)
        for c, n in ((0, 54), (1, 34), (2, 133)):
            assert abs((labels[va] == c).sum() - n / 5) <= 1


def test_kfold_needs_enough_cases_per_class():
    with pytest.raises(ValueError, match="at least 5 cases of every class"):
        stratified_kfold(np.array([0, 0, 0, 1, 1, 2] * 1), 5, seed=0)


def test_holdout_keeps_every_class():
    labels = np.array([2] * 133 + [0] * 54 + [1] * 34)
    tr, held = stratified_holdout(labels, 0.2, seed=0)
    assert len(held) == 27 + 11 + 7 and not set(tr) & set(held)
    assert set(labels[held]) == {0, 1, 2}


def test_init_weights_loads_and_adapts_rgb(tmp_path, tiny_config):
    params = init_variables(tiny_config)["params"]
    rgb = np.random.default_rng(0).normal(size=(7, 7, 3, 2)).astype(np.float32)
    np.savez(tmp_path / "w.npz", **{"conv_init/kernel": rgb, "not/in/model": np.zeros(3)})
    new, loaded = load_partial(params, tmp_path / "w.npz")
    assert loaded == ["conv_init/kernel"]
    k = np.asarray(new["conv_init"]["kernel"])
    c = IMAGE_SHAPE[-1]  # every channel of every view
    assert k.shape == (7, 7, c, 2)
    np.testing.assert_allclose(k[:, :, 0], rgb.mean(axis=2) * 3 / c, rtol=1e-6)


def test_a_model_of_the_old_four_channel_input_is_refused_in_one_line(tmp_path, tiny_config):
    """A run trained before the two-view input cannot be loaded into the 8-channel model silently."""
    import jax
    from flax import serialization

    from radpath.train.run import load_model

    variables = init_variables(tiny_config)
    old = jax.tree_util.tree_map(lambda a: a, variables)
    old["params"]["conv_init"]["kernel"] = np.zeros((7, 7, 4, tiny_config.width), np.float32)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "variables.msgpack").write_bytes(serialization.to_bytes(old))
    (tmp_path / "model" / "config.json").write_text(tiny_config.to_json())
    with pytest.raises(ValueError, match="reads 4 input channels.*builds 8.*train it again"):
        load_model(tmp_path)
