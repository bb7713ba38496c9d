"""Training settings: one typed, frozen dataclass, saved as JSON beside every checkpoint and export."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

RESNET50_STAGES = (3, 4, 6, 3)
"""Bottleneck blocks per stage of ResNet50 (the default; the model card names the real layout)."""
RESNET_VARIANTS = ("flax", "torchvision", "keras")
"""Layouts of the ResNet (see `train.resnet`): the last two match those frameworks' ResNet50 exactly."""


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
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    seed: int = 0
    use_age: bool = False
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
    tta: bool = True
    """Test-time averaging over the neighbouring slices (-1, 0, +1) and left-right flips."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown training settings {sorted(unknown)}")
        if "stages" in data:
            data["stages"] = tuple(data["stages"])  # JSON has no tuples; the config must stay hashable
        return cls(**data)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
