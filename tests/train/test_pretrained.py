"""`radpath convert-weights`: ImageNet ResNet50 files from Keras and torchvision into our model, exactly.

Nothing is downloaded: Keras' own `keras.applications.ResNet50` with RANDOM weights (BatchNorm
statistics randomised too) is saved in the published legacy `.h5` layout and as a Keras 3
`.weights.h5`; our converted model must give the same pooled features to 1e-4 at 64x64. torch is not
installed here, so torchvision's layout is checked against a Keras reference built from torchvision's
definition (its state-dict names and OIHW kernels, PyTorch's symmetric padding), written with the
`safetensors` package.
"""

from __future__ import annotations

import functools

import h5py
import jax
import numpy as np
import pytest

from radpath.cli import main
from radpath.train.config import RESNET50_STAGES
from radpath.train.pretrained import (
    IMAGENET_PIXEL_STD_BGR,
    check_fits,
    convert,
    load_variables,
    weights_meta,
)
from radpath.train.resnet import ResNet

keras = pytest.importorskip("keras")
SIZE = 64


def _randomise(model, seed: int) -> None:
    """Random kernels, biases, BatchNorm scales, shifts and statistics, all away from identity; scaled so
    that features stay of order 1 (the residual branches' last BatchNorm scales small, the first kernel
    scaled for Keras' pixel-sized inputs) and 1e-4 means what it says."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            shape, name = tuple(w.shape), w.path.split("/")[-1]
            if name == "kernel":
                scale = 1 / 57.0 if layer.name == "conv1_conv" else 1.0
                new.append(rng.normal(0, scale * np.sqrt(2.0 / np.prod(shape[:-1])), shape))
            elif name == "gamma" and layer.name.endswith(("_0_bn", "_3_bn")):
                new.append(rng.uniform(0.1, 0.3, shape))
            elif name in ("gamma", "moving_variance"):
                new.append(rng.uniform(0.5, 1.5, shape))
            else:  # bias, beta, moving_mean
                new.append(rng.normal(0, 0.1, shape))
        if new:
            layer.set_weights([a.astype(np.float32) for a in new])


def _save_legacy_h5(model, path) -> None:
    """The layout of the published resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras 2)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.path.split('/')[-1]}:0" for w in layer.weights]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, layer.weights, strict=True):
                g.create_dataset(n, data=np.asarray(w.numpy()))


@functools.lru_cache(maxsize=4)
def _our_model(variant: str, channels: int):
    """(initial variables, jitted features function) of our ResNet50 at width 64, compiled once."""
    model = ResNet(stages=RESNET50_STAGES, width=64, num_classes=3, variant=variant)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), np.zeros((1, SIZE, SIZE, channels), np.float32))

    @jax.jit
    def features(v, x):
        return model.apply(v, x, train=False, mutable=["intermediates"])[1]["intermediates"]["features"][0]

    return dict(variables), features


def _our_features(npz, variant: str, x: np.ndarray) -> np.ndarray:
    initial, features = _our_model(variant, x.shape[-1])
    variables, loaded = load_variables(initial, npz)
    n_bn = sum(RESNET50_STAGES) * 3 + 4 + 1  # bottleneck BNs, projection BNs, stem BN
    assert sum(k.startswith("batch_stats/") for k in loaded) == 2 * n_bn
    return np.asarray(features(variables, x))


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras")
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), pooling="avg")
    _randomise(model, seed=1)
    _save_legacy_h5(model, tmp / "resnet50_notop.h5")
    model.save_weights(tmp / "resnet50.weights.h5")
    z = np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    grey = np.random.default_rng(3).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    std = np.asarray(IMAGENET_PIXEL_STD_BGR, np.float32)
    # Keras' ResNet50 takes "caffe" inputs (pixels minus the mean, not scaled): z-scores times the std
    return {
        "dir": tmp,
        "z": z,
        "grey": grey,
        "features": np.asarray(model(z * std, training=False)),
        "features_grey": np.asarray(model(grey * std, training=False)),
    }


@pytest.mark.parametrize("name", ["resnet50_notop.h5", "resnet50.weights.h5"])
def test_keras_resnet50_same_features(keras_files, tmp_path, name):
    out = tmp_path / "imagenet.npz"
    summary = convert(keras_files["dir"] / name, out)
    assert summary["variant"] == "keras" and weights_meta(out) == {"variant": "keras", "width": 64}
    ours = _our_features(out, "keras", keras_files["z"])
    ref = keras_files["features"]
    assert ref.shape == ours.shape == (2, 2048) and 0.1 < np.abs(ref).max() < 100
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_four_channel_stem_sees_a_grey_image_as_rgb_does(keras_files, tmp_path):
    """The 4-channel adaptation (RGB mean x 3/4 per channel): a grey image in all 4 MRI channels gives
    the features the RGB network gives for it in R, G and B."""
    out = tmp_path / "imagenet.npz"
    convert(keras_files["dir"] / "resnet50_notop.h5", out)
    ours = _our_features(out, "keras", np.repeat(keras_files["grey"], 4, axis=-1))
    np.testing.assert_allclose(ours, keras_files["features_grey"], atol=1e-4, rtol=1e-4)


def _torchvision_reference(seed: int):
    """torchvision's resnet50 (v1.5) in Keras layers: stride on the 3x3, PyTorch's symmetric padding,
    no conv bias, BatchNorm eps 1e-5; returns (model, state dict in torchvision's names and OIHW)."""
    L = keras.layers
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}

    def conv(x, name, filters, k, stride):
        w = rng.normal(0, np.sqrt(2.0 / (k * k * x.shape[-1])), (filters, x.shape[-1], k, k)).astype(np.float32)
        sd[f"{name}.weight"] = w
        if k > 1:
            x = L.ZeroPadding2D(k // 2)(x)
        layer = L.Conv2D(filters, k, strides=stride, use_bias=False)
        y = layer(x)
        layer.set_weights([np.transpose(w, (2, 3, 1, 0))])
        return y

    def bn(x, name):
        c = x.shape[-1]
        lo, hi = (0.1, 0.3) if name.endswith((".bn3", ".downsample.1")) else (0.5, 1.5)  # features of order 1
        w = [rng.uniform(lo, hi, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)]
        for key, a in zip(("weight", "bias", "running_mean", "running_var"), w, strict=True):
            sd[f"{name}.{key}"] = a.astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(7, np.int64)
        layer = L.BatchNormalization(epsilon=1e-5)
        y = layer(x)
        layer.set_weights([a.astype(np.float32) for a in w])
        return y

    inp = keras.Input((SIZE, SIZE, 3))
    x = L.ReLU()(bn(conv(inp, "conv1", 64, 7, 2), "bn1"))
    x = L.MaxPooling2D(3, 2)(L.ZeroPadding2D(1)(x))
    for s, n in enumerate(RESNET50_STAGES):
        for j in range(n):
            p, stride, f = f"layer{s + 1}.{j}", 2 if s > 0 and j == 0 else 1, 64 * 2**s
            y = L.ReLU()(bn(conv(x, f"{p}.conv1", f, 1, 1), f"{p}.bn1"))
            y = L.ReLU()(bn(conv(y, f"{p}.conv2", f, 3, stride), f"{p}.bn2"))
            y = bn(conv(y, f"{p}.conv3", 4 * f, 1, 1), f"{p}.bn3")
            if j == 0:
                x = bn(conv(x, f"{p}.downsample.0", 4 * f, 1, stride), f"{p}.downsample.1")
            x = L.ReLU()(L.Add()([x, y]))
    sd["fc.weight"], sd["fc.bias"] = np.zeros((1000, 2048), np.float32), np.zeros(1000, np.float32)
    return keras.Model(inp, L.GlobalAveragePooling2D()(x)), sd


def test_torchvision_layout_same_features(tmp_path):
    from safetensors.numpy import save_file

    model, sd = _torchvision_reference(seed=4)
    save_file(sd, str(tmp_path / "model.safetensors"))
    summary = convert(tmp_path / "model.safetensors", tmp_path / "imagenet.npz")
    assert summary["variant"] == "torchvision"
    z = np.random.default_rng(5).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    ref = np.asarray(model(z, training=False))
    assert 0.1 < np.abs(ref).max() < 100
    np.testing.assert_allclose(_our_features(tmp_path / "imagenet.npz", "torchvision", z), ref, atol=1e-4, rtol=1e-4)
    # the Flax example's "SAME" padding shifts every stride-2 window by a pixel: not the same network
    assert np.abs(_our_features(tmp_path / "imagenet.npz", "flax", z) - ref).max() > 1e-2


def test_refusals_are_one_line(keras_files, tmp_path, capsys):
    from radpath.train.config import TrainConfig

    out = tmp_path / "imagenet.npz"
    assert main(["convert-weights", str(keras_files["dir"] / "resnet50_notop.h5"), "--out", str(out)]) == 0
    assert "--init-weights" in capsys.readouterr().out
    with pytest.raises(ValueError, match="need --width 64"):
        check_fits(out, TrainConfig(width=8, resnet_variant="keras"))
    with pytest.raises(ValueError, match="converted for resnet_variant 'keras'"):
        check_fits(out, TrainConfig(width=64))
    check_fits(out, TrainConfig(width=64, resnet_variant="keras"))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert main(["convert-weights", str(tmp_path / "junk.h5"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "junk.h5" in err
    np.savez(tmp_path / "other.npz", **{"fc.weight": np.zeros((3, 3))})
    assert main(["convert-weights", str(tmp_path / "other.npz"), "--out", str(out)]) == 1
    assert "not a torchvision ResNet50 state dict" in capsys.readouterr().err
