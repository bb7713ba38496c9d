import numpy as np
import pytest

from radpath.train.config import TrainConfig
from radpath.train.examples import Examples

TINY = TrainConfig(width=2, stages=(1, 1, 1, 1), epochs=2, batch_size=4, warmup_epochs=0, learning_rate=1e-2)
"""A ResNet with one bottleneck per stage and width 2: compiles in seconds, same code path."""


def fake_examples(n: int = 12, seed: int = 0) -> Examples:
    """Random inputs whose class shows in channel means, so a model can fit them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.normal(0, 1, (n, 3, 224, 224, 8)).astype(np.float16)
    images[..., 0] += labels[:, None, None, None].astype(np.float16)
    return Examples(
        [f"CASE_{i}" for i in range(n)],
        images,
        labels.astype(np.int32),
        np.full(n, 20000.0, np.float32),
        (-1, 0, 1),
        [],
    )


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TINY


@pytest.fixture(scope="session")
def examples() -> Examples:
    return fake_examples()
