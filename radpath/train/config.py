"""Training settings: one typed, frozen dataclass, saved as JSON beside every checkpoint and export.

Every field can be set three ways, each checked against the field's type with a one-line error:
a named configuration file (`radpath train --config configs/demo.json`), the dedicated flags
(`--width 8`) and `--set key=value` for any field (`--set label_smoothing=0.05`). Later wins: file,
then flags, then `--set`. Unknown keys and values of the wrong type are refused, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESNET50_STAGES = (3, 4, 6, 3)
"""Bottleneck blocks per stage of ResNet50 (the default; the model card names the real layout)."""
RESNET_VARIANTS = ("flax", "torchvision", "keras")
"""Layouts of the ResNet (see `train.resnet`): the last two match those frameworks' ResNet50 exactly."""
COMPUTE_DTYPES = ("float32", "bfloat16")
SLICE_OFFSETS = (-2, -1, 0, 1, 2)
"""The slices around the max-tumour slice that training draws from, by default."""


class ConfigError(ValueError):
    """A training setting that does not exist or does not fit its type or range (one line)."""


@dataclass(frozen=True)
class TrainConfig:
    width: int = 8
    """Base width of the ResNet50 (64 = the standard model; 8 trains in minutes on a CPU)."""
    stages: tuple[int, ...] = RESNET50_STAGES
    """Bottleneck blocks per stage: RESNET50_STAGES is ResNet50; tests use (1, 1, 1, 1) to compile fast."""
    epochs: int = 30
    batch_size: int = 16
    """Global batch; split evenly over the devices."""
    learning_rate: float = 2e-3
    warmup_epochs: int = 2
    """Linear warm-up; shortened automatically when the run is not longer than it."""
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    seed: int = 0
    use_age: bool = False
    """Feed the patient's age next to the pooled image features (a second signature input)."""
    age_prior_init: bool = False
    """With use_age: start the class head's age weights from the age-only logistic regression fitted on the
    training cases (`loop.with_age_prior`), not from near zero."""
    rotate_degrees: float = 12.0
    scale_range: float = 0.1
    intensity_jitter: float = 0.25
    """Per-channel gain and offset jitter (robust-z units): scanners and protocols differ."""
    contrast_curve: float = 0.6
    """Strength of a random monotone intensity curve per channel (x + k*2*tanh(x/2), |k| <= this): a
    model that only works on one contrast mapping has learned the scanner, not the tumour."""
    blur: float = 0.6
    """Largest mix with a Gaussian-blurred copy (sigma 1.2 px): other resolutions and slice thicknesses."""
    noise_std: float = 0.08
    """Largest per-image noise level (drawn uniformly up to this), inside the brain only."""
    init_weights: str | None = None
    """Optional .npz of starting weights in our names, e.g. from `radpath convert-weights` (`train.pretrained`)."""
    compute_dtype: str = "float32"
    """dtype of the ResNet's convolutions and matrix products in the training step: "float32" or "bfloat16"
    (parameters, BatchNorm statistics, the loss and the optimizer stay float32; evaluation, calibration and
    the exported model compute in float32)."""
    resnet_variant: str = "flax"
    """Layout of the ResNet: "flax" (the Flax ImageNet example), "torchvision" (v1.5) or "keras" (v1); weights
    converted from torchvision or Keras need theirs (`radpath train --init-weights` takes it from the file)."""
    slice_offsets: tuple[int, ...] = SLICE_OFFSETS
    """Slices (relative to the max-tumour slice) cached per case; each epoch draws one per case. Must hold
    -1, 0 and 1 (test-time averaging reads them). Wider offsets show the tumour at other levels: more
    distinct images of each case than its near-identical neighbours."""
    tta: bool = True
    """Test-time averaging over the neighbouring slices (-1, 0, +1) and left-right flips."""
    seg_weight: float = 0.0
    """Weight of an auxiliary segmentation loss (necrosis, oedema, enhancing at stride 8) on the
    cohort's ground-truth masks (`Segmentation/<ID>_seg.nii.gz`, BraTS labels; synthetic cohorts
    have them); 0 = none. Training only: the exported model and its signature are unchanged."""
    region_pool: bool = False
    """With the segmentation head (seg_weight > 0): the class head also reads the image's statistics inside
    the head's predicted tumour parts (per view and sequence: mean and spread of the robust z-scores in
    necrosis, oedema, enhancing and normal brain, and each part's share of the view), what a radiomics
    model reads, next to the pooled features. The head then runs at inference too (same signature)."""
    feature_dropout: float = 0.0
    """Dropout rate on the pooled image features in training (not on the region statistics or age): 176
    training cases fit 256 pooled features easily; the region statistics, learnt densely from the masks,
    carry over to new cases better."""
    region_dark: bool = False
    """With region_pool: also each part's share of pixels darker than the brain, per sequence and view (the
    calcified foci of oligodendrogliomas, the FLAIR-dark centre of a T2-FLAIR mismatch)."""
    region_location: bool = False
    """With region_pool: also where each part lies in the whole-brain view (front to back, distance from
    the midline, share on the brain's rim where the cortex is): oligodendrogliomas are often frontal and
    reach the cortex, glioblastomas may cross the midline."""
    region_specks: bool = False
    """With region_pool: also each part's share of small foci dark on both T2 and FLAIR (a morphological
    black top-hat), the calcifications typical of oligodendrogliomas, per view."""

    tumor_stats: bool = False
    """The class head also reads the tumour statistics (`preprocess.tumor_stats`: the whole detected
    tumour in 3-D, its size, site, z-scores and enhancing, mismatch and dark shares), a third model input
    (`contract.signature.TUMOR_STATS_INPUT`): the signs a one-slice model cannot see."""
    stats_fusion: float = 0.0
    """Weight of a second reader in the model's output: the logistic regression on the tumour statistics
    (and age, with use_age) fitted on the training split, pooled with the network's probabilities as a
    weighted geometric mean (`train.fusion`; 0 off, 0.5 equal). The model then takes the tumour
    statistics as an input, as with tumor_stats."""

    @property
    def reads_tumor_stats(self) -> bool:
        """The model takes the tumour statistics as an input (its class head reads them, or it pools the
        tumour-statistics reader): the signature, the client and every prediction path pass them."""
        return self.tumor_stats or self.stats_fusion > 0

    def __post_init__(self) -> None:
        for name in ("width", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.stages or min(self.stages) < 1:
            raise ConfigError(f"stages must be positive block counts, e.g. 3,4,6,3; got {list(self.stages)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in (
            "warmup_epochs",
            "weight_decay",
            "rotate_degrees",
            "scale_range",
            "intensity_jitter",
            "seg_weight",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("label_smoothing", "contrast_curve", "blur", "noise_std", "feature_dropout", "stats_fusion"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.resnet_variant not in RESNET_VARIANTS:
            raise ConfigError(
                f"resnet_variant must be one of {', '.join(RESNET_VARIANTS)}; got {self.resnet_variant!r}"
            )
        if self.region_pool and self.seg_weight <= 0:
            raise ConfigError("region_pool needs the segmentation head: set seg_weight > 0 (and a cohort with masks)")
        if not {-1, 0, 1} <= set(self.slice_offsets) or len(set(self.slice_offsets)) != len(self.slice_offsets):
            raise ConfigError(f"slice_offsets must be distinct and hold -1, 0 and 1; got {list(self.slice_offsets)}")
        if max(abs(o) for o in self.slice_offsets) > 20:
            raise ConfigError(
                f"slice_offsets reach at most 20 slices from the tumour's; got {list(self.slice_offsets)}"
            )
        if self.age_prior_init and not self.use_age:
            raise ConfigError("age_prior_init starts the age weights of a model that reads age: set use_age=true too")
        if self.region_dark and not self.region_pool:
            raise ConfigError("region_dark adds to the region statistics: set region_pool=true too")
        if self.region_specks and not self.region_pool:
            raise ConfigError("region_specks adds to the region statistics: set region_pool=true too")
        if self.region_location and not self.region_pool:
            raise ConfigError("region_location adds to the region statistics: set region_pool=true too")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ConfigError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {self.compute_dtype!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str = "settings", base: TrainConfig | None = None
    ) -> TrainConfig:
        """`base` (default: the defaults) with `data`'s fields, each checked against its type."""
        types = field_types()
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ConfigError(f"{where}: unknown training setting(s) {unknown}; known: {', '.join(types)}")
        values = {k: coerce(k, types[k], v, where) for k, v in data.items()}
        return dataclasses.replace(base or cls(), **values)

    @classmethod
    def from_file(cls, path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
        """A JSON object of settings (a named configuration in `configs/`, or a run's config.json)."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON configuration ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a configuration is a JSON object of settings, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if not k.startswith("_")}  # "_comment" keys document a file
        return cls.from_dict(data, str(path), base)

    def with_settings(self, pairs: Iterable[str]) -> TrainConfig:
        """This config with `key=value` strings applied (`--set`), values parsed by the field's type."""
        types = field_types()
        changes: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set epochs=40")
            if key not in types:
                raise ConfigError(f"--set {pair!r}: unknown training setting {key!r}; known: {', '.join(types)}")
            changes[key] = parse_text(key, types[key], text.strip())
        return self.replace(**changes)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def field_types() -> dict[str, Any]:
    """{field name: resolved type} of TrainConfig, in declaration order."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(key: str, tp: Any, value: Any, where: str) -> Any:
    """A JSON value checked against field type `tp` (ints are accepted for floats; lists for tuples)."""
    if value is None:
        if type(None) in typing.get_args(tp):
            return None
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got null")
    base = _non_optional(tp)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    elif typing.get_origin(base) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    else:  # a field type this parser does not know: a bug to fix here, not the user's
        raise TypeError(f"TrainConfig.{key}: no parser for type {tp}")
    if not ok:
        raise ConfigError(f"{where}: {key} must be {_type_name(base)}, got {json.dumps(value)}")
    return value


def parse_text(key: str, tp: Any, text: str) -> Any:
    """A command-line string for field type `tp`: true/false, numbers, 3,4,6,3 for tuples, none."""
    where = f"--set {key}={text}"
    low = text.lower()
    if low in ("none", "null") and type(None) in typing.get_args(tp):
        return None
    base = _non_optional(tp)
    try:
        if base is bool:
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base is str:
            return text
        if typing.get_origin(base) is tuple:
            return tuple(int(v) for v in text.strip("[]()").split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{where}: {key} must be {_type_name(base)}") from None
    raise TypeError(f"TrainConfig.{key}: no parser for type {tp}")


def _non_optional(tp: Any) -> Any:
    """`X` for `X | None`, `tp` otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp
