"""Starting weights for `radpath train --init-weights`: ImageNet ResNet50 files converted to our names.

`radpath convert-weights SRC --out imagenet.npz` reads a published ImageNet ResNet50 weights file that
the user downloaded once, and writes every convolution, BatchNorm scale and bias and BatchNorm running
statistics under our Flax names (`params/...`, `batch_stats/...`); the 1000-class head is dropped
(ours has 3 classes and starts from scratch). Accepted sources:

- torchvision's state dict names (`conv1.weight`, `layer1.0.bn1.running_mean`, ...; ResNet v1.5):
  `.safetensors`, as timm publishes torchvision's ResNet50 weights on Hugging Face
  (`timm/resnet50.tv_in1k`, `timm/resnet50.tv2_in1k`, `timm/resnet50.a1_in1k`), or an `.npz` of
  `{k: v.numpy() for k, v in torch.load(...).items()}`. Our model then uses `resnet_variant`
  "torchvision" (stride-2 layers padded on both sides, as PyTorch pads).
- Keras' `keras.applications.ResNet50` weights (ResNet v1: stride on the first 1x1 convolution,
  convolutions with bias): the published `resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5`
  or a Keras 3 `.weights.h5`. Our model then uses `resnet_variant` "keras".

Inputs: ours are z-scored per channel, as torchvision's normalised inputs are; Keras' ResNet50 takes
"caffe" inputs (BGR, mean subtracted, not divided by the standard deviation), so its first kernel is
multiplied by ImageNet's per-channel pixel standard deviation: it then sees z-scores the way it saw pixels.

Stem: ImageNet's first convolution reads 3 channels (RGB), ours C = 8 (FLAIR, T1, T1ce, T2 in each of
the model input's two views). Loading gives each of our channels the mean of the RGB kernels times
3/C: a grey image (the same values in every channel) yields exactly the activations the RGB network
gives for that grey image in R, G and B.

The file keeps the exact 3-channel kernel and records its variant and width (`meta/...`); loading it
into a model of another width or stage layout is refused in one line (ImageNet's ResNet50 has width
64, stages 3 4 6 3). A plain `.npz` of our parameter names (`conv_init/kernel`, ...) also loads: the
matching shapes are copied, the rest keeps its initialisation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .config import RESNET50_STAGES, RESNET_VARIANTS, TrainConfig

log = logging.getLogger(__name__)

IMAGENET_WIDTH = 64
IMAGENET_PIXEL_STD_BGR = (57.375, 57.12, 58.395)
"""ImageNet's per-channel pixel standard deviation (0-255), in the BGR order of Keras' caffe inputs."""
BN_TORCH = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
BN_KERAS = ("scale", "bias", "mean", "var")  # Keras BatchNormalization weights: gamma, beta, moving mean, variance
COLLECTION = {"scale": "params", "bias": "params", "kernel": "params", "mean": "batch_stats", "var": "batch_stats"}


class WeightsFileError(ValueError):
    """A weights file that cannot be read or does not fit; the message names the file and the fix."""


# ------------------------------------------------------------------ naming
def _blocks() -> list[tuple[str, str, str]]:
    """(our block name, torchvision prefix, Keras prefix) of every bottleneck of ResNet50, in order."""
    out, k = [], 0
    for s, n in enumerate(RESNET50_STAGES):
        for j in range(n):
            out.append((f"Bottleneck_{k}", f"layer{s + 1}.{j}", f"conv{s + 2}_block{j + 1}"))
            k += 1
    return out


def _layers() -> list[tuple[str, str, str, str, str, str]]:
    """(our conv, our norm, torchvision conv, torchvision BatchNorm, Keras conv, Keras BatchNorm) of every
    convolution + batch-norm pair, in order: one table, so both formats map the same layers."""
    rows = [("conv_init", "bn_init", "conv1", "bn1", "conv1_conv", "conv1_bn")]
    for ours, tv, ke in _blocks():
        for i in range(3):
            names = (f"{tv}.conv{i + 1}", f"{tv}.bn{i + 1}", f"{ke}_{i + 1}_conv", f"{ke}_{i + 1}_bn")
            rows.append((f"{ours}/Conv_{i}", f"{ours}/BatchNorm_{i}", *names))
        if tv.endswith(".0"):
            names = (f"{tv}.downsample.0", f"{tv}.downsample.1", f"{ke}_0_conv", f"{ke}_0_bn")
            rows.append((f"{ours}/conv_proj", f"{ours}/norm_proj", *names))
    return rows


# ------------------------------------------------------------------ reading the published formats
def read_torchvision(path: Path) -> dict[str, np.ndarray]:
    """A torchvision-named state dict from `.safetensors` or `.npz`."""
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            sd = dict(load_file(str(path)))
        except Exception as exc:  # the library's errors name no file
            raise WeightsFileError(f"{path}: not a readable .safetensors file ({exc})") from None
    else:
        with np.load(path) as f:
            sd = {k: f[k] for k in f.files}
    if sd and all(k.startswith("module.") for k in sd):  # saved from torch.nn.DataParallel
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def read_keras(path: Path) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights in Keras' order, from a legacy `.h5` (as published, or a whole
    saved model) or a Keras 3 `.weights.h5`."""
    import h5py

    layers: dict[str, list[np.ndarray]] = {}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsFileError(f"{path}: not an HDF5 file ({exc})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in root.attrs:  # legacy: one group per layer, its `weight_names` in order
            for name in root.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
                layers[name] = [np.asarray(group[n]) for n in names]
        else:  # Keras 3: layers/<path>/vars/<index>, the layer's name in the attribute `name`

            def visit(key: str, obj) -> None:
                if key.endswith("vars") and isinstance(obj, h5py.Group) and "name" in obj.attrs and len(obj):
                    layers[str(obj.attrs["name"])] = [np.asarray(obj[str(i)]) for i in range(len(obj))]

            root.visititems(visit)
    return layers


# ------------------------------------------------------------------ conversion
def from_torchvision(sd: dict[str, np.ndarray], source: str = "state dict") -> dict[str, np.ndarray]:
    """Our flat names (`params/...`, `batch_stats/...`) from a torchvision ResNet50 state dict."""
    out: dict[str, np.ndarray] = {}
    missing = []
    for conv, norm, tv_conv, tv_bn, _, _ in _layers():
        key = f"{tv_conv}.weight"
        if key not in sd:
            missing.append(key)
            continue
        out[f"params/{conv}/kernel"] = np.transpose(sd[key], (2, 3, 1, 0))  # OIHW -> HWIO
        for tv, ours in BN_TORCH.items():
            if f"{tv_bn}.{tv}" not in sd:
                missing.append(f"{tv_bn}.{tv}")
                continue
            out[f"{COLLECTION[ours]}/{norm}/{ours}"] = sd[f"{tv_bn}.{tv}"]
    if missing:
        raise WeightsFileError(
            f"{source}: not a torchvision ResNet50 state dict ({len(missing)} tensors missing, e.g. {missing[0]}; "
            f"it has e.g. {sorted(sd)[:3]})"
        )
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def from_keras(layers: dict[str, list[np.ndarray]], source: str = "Keras weights") -> dict[str, np.ndarray]:
    """Our flat names from `keras.applications.ResNet50` weights (layer name -> [kernel, bias] or
    [gamma, beta, moving mean, moving variance]); the first kernel is scaled for z-scored inputs."""
    out: dict[str, np.ndarray] = {}
    missing = []
    for conv, norm, _, _, k_conv, k_bn in _layers():
        if len(layers.get(k_conv, [])) != 2 or len(layers.get(k_bn, [])) != 4:
            missing.append(k_conv if len(layers.get(k_conv, [])) != 2 else k_bn)
            continue
        out[f"params/{conv}/kernel"], out[f"params/{conv}/bias"] = layers[k_conv]
        for ours, w in zip(BN_KERAS, layers[k_bn], strict=True):
            out[f"{COLLECTION[ours]}/{norm}/{ours}"] = w
    if missing:
        raise WeightsFileError(
            f"{source}: not Keras ResNet50 weights ({len(missing)} layers missing or incomplete, e.g. "
            f"{missing[0]}; it has e.g. {sorted(layers)[:3]})"
        )
    out["params/conv_init/kernel"] = out["params/conv_init/kernel"] * np.asarray(IMAGENET_PIXEL_STD_BGR)[:, None]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def convert(src: str | Path, out: str | Path) -> dict:
    """Write `out` (.npz in our names) from a published ImageNet ResNet50 file; returns a summary."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise WeightsFileError(f"{src}: file not found (download the ImageNet ResNet50 weights first)")
    if src.name.endswith(".h5"):
        flat, variant = from_keras(read_keras(src), str(src)), "keras"
    elif src.suffix in (".safetensors", ".npz"):
        flat, variant = from_torchvision(read_torchvision(src), str(src)), "torchvision"
    else:
        raise WeightsFileError(
            f"{src}: unknown format; give torchvision-named .safetensors / .npz or Keras ResNet50 .h5 / .weights.h5"
        )
    width = flat["params/conv_init/kernel"].shape[-1]
    if width != IMAGENET_WIDTH:
        raise WeightsFileError(f"{src}: a ResNet50 of width {width}, not ImageNet's {IMAGENET_WIDTH}")
    meta = {"meta/variant": np.array(variant), "meta/width": np.array(width), "meta/source": np.array(src.name)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **flat, **meta)
    tmp.replace(out)
    return {"variant": variant, "tensors": len(flat), "source": str(src), "out": str(out)}


# ------------------------------------------------------------------ loading
def weights_meta(path: str | Path) -> dict:
    """{"variant", "width"} of a converted file; {} for a plain .npz of our names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init-weights {path}: file not found")
    with np.load(path) as f:
        if "meta/variant" not in f.files:
            return {}
        return {"variant": str(f["meta/variant"]), "width": int(f["meta/width"])}


def check_fits(path: str | Path, config: TrainConfig) -> None:
    """Refuse, in one line, converted ImageNet weights that do not fit the model `config` builds."""
    meta = weights_meta(path)
    if not meta:
        return
    if config.width != meta["width"] or tuple(config.stages) != RESNET50_STAGES:
        raise ValueError(
            f"--init-weights {path}: ImageNet ResNet50 weights need --width {meta['width']} and --stages "
            f"{' '.join(map(str, RESNET50_STAGES))} (this run: width {config.width}, stages {list(config.stages)})"
        )
    if config.resnet_variant != meta["variant"]:
        raise ValueError(
            f"--init-weights {path}: converted for resnet_variant {meta['variant']!r}, this run builds "
            f"{config.resnet_variant!r} (one of {RESNET_VARIANTS})"
        )


def _adapt(w: np.ndarray, target: tuple) -> np.ndarray:
    """An RGB first kernel [7, 7, 3, W] for `target` [7, 7, C, W]: the RGB mean times 3 / C per channel."""
    if w.shape != target and w.ndim == 4 and w.shape[2] == 3 and w.shape[:2] + w.shape[3:] == target[:2] + target[3:]:
        return np.repeat(w.mean(axis=2, keepdims=True), target[2], axis=2) * (3.0 / target[2])
    return w


def load_variables(variables: dict, path: str | Path, config: TrainConfig | None = None) -> tuple[dict, list[str]]:
    """(variables with the file's matching entries replaced, the keys loaded): `params/...` and
    `batch_stats/...` keys, or bare parameter names for a plain file of our names."""
    from flax import traverse_util

    path = Path(path)
    if config is not None:
        check_fits(path, config)
    elif not path.is_file():
        raise FileNotFoundError(f"--init-weights {path}: file not found")
    flat = traverse_util.flatten_dict({k: variables[k] for k in ("params", "batch_stats") if k in variables}, sep="/")
    loaded = []
    with np.load(path) as weights:
        for name in weights.files:
            key = name if name.split("/")[0] in ("params", "batch_stats", "meta") else f"params/{name}"
            if key not in flat:
                continue
            target = tuple(flat[key].shape)
            w = _adapt(weights[name], target)
            if w.shape != target:
                log.warning("--init-weights: %s has shape %s, the model needs %s; skipped", name, w.shape, target)
                continue
            flat[key] = w.astype(np.asarray(flat[key]).dtype)
            loaded.append(key)
    if not loaded:
        raise ValueError(f"--init-weights {path}: no parameter name matches this model (e.g. {next(iter(flat))})")
    log.info("loaded %d tensors from %s", len(loaded), path)
    new = traverse_util.unflatten_dict(flat, sep="/")
    return {**variables, **new}, loaded


def load_partial(params: dict, path: str | Path) -> tuple[dict, list[str]]:
    """(params with matching entries replaced, the parameter names loaded): the params-only form."""
    new, loaded = load_variables({"params": params}, path)
    return new["params"], [k.removeprefix("params/") for k in loaded]
