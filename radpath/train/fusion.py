"""The served model's second reader: the tumour-statistics logistic regression, folded into the model.

Why: measured over three seeds on the same splits (README, the tumour-statistics rounds), the image model wins on
the held-out split of its own cohort (0.862 against 0.762) and the plain logistic regression on the
whole tumour's 3-D statistics and age (`train.baselines`, `tumour_stats_and_age`) wins on every cohort
the model was not drawn from (fresh in-style 0.763 against 0.725). Handing the statistics to the
ResNet's class head did not carry that over (the network fits the training cases with the image
before it needs them). Pooling the two readers' opinions does: with `stats_fusion = w` the model's
logits are

    (1 - w) * log_softmax(image logits) + w * log_softmax(logistic regression logits)

(log-linear pooling, a weighted geometric mean of the two probability vectors; 0.5 weighs them
equally, chosen before measuring, not tuned on any cohort). The logistic regression is the baseline's
own recipe (class-balanced, L2 with C = `baselines.STATS_C`, standardised features), fitted on the same
training split as the network after the network is trained; it never sees the held-out split, which
the temperature and refer threshold are then fitted on, on the pooled logits.

Its parameters live in the model's variables under FUSION_KEY (`mean`, `scale`, `coef`, `intercept`),
so they travel with `variables.msgpack`, into the SavedModel as weights (jax2tf), and every path that
scores the model (prediction, calibration, export parity, explanations) goes through `fused_apply`.
The served model then needs the tumour statistics as an input (`contract.signature.TUMOR_STATS_INPUT`):
`TrainConfig.reads_tumor_stats` says so, and the client computes them from the case.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from radpath.contract.model_io import NUM_CLASSES, TUMOR_STATS

from .baselines import STATS_C, baseline_features, fit_logistic
from .config import TrainConfig

FUSION_KEY = "stats_fusion"
"""The variables' collection holding the fitted logistic regression (not a Flax collection: the
network's `apply` never sees it)."""


def n_features(config: TrainConfig) -> int:
    """The logistic regression's inputs: the tumour statistics, then age in years when the model reads age
    (a model without age gets the contract's fill in serving, which carries no information)."""
    return len(TUMOR_STATS) + (1 if config.use_age else 0)


def fusion_features(stats: np.ndarray, ages_days: np.ndarray, config: TrainConfig) -> np.ndarray:
    """float64 [n, n_features]: with age, exactly the `tumour_stats_and_age` baseline's features."""
    if not config.use_age:
        return np.asarray(stats, np.float64)
    x = baseline_features("tumour_stats_and_age", (), ages_days, None, stats)
    assert x is not None  # statistics given: that baseline always has its features
    return x


def placeholder(config: TrainConfig) -> dict[str, np.ndarray]:
    """Zero-initialised parameters (the variables' structure before `fit_fusion`; a loaded model's template)."""
    d = n_features(config)
    return {
        "mean": np.zeros(d, np.float32),
        "scale": np.ones(d, np.float32),
        "coef": np.zeros((d, NUM_CLASSES), np.float32),
        "intercept": np.zeros(NUM_CLASSES, np.float32),
    }


def fit_fusion(stats: np.ndarray | None, ages_days: np.ndarray, labels: np.ndarray, config: TrainConfig) -> dict:
    """The logistic regression's parameters (float32 arrays) fitted on these training cases."""
    if stats is None:
        raise ValueError("stats_fusion needs the training cases' tumour statistics (build_examples computes them)")
    fitted = fit_logistic(fusion_features(stats, ages_days, config), np.asarray(labels), c=STATS_C)
    return {k: np.asarray(v, np.float32) for k, v in fitted.items()}


def with_fusion(variables: dict, config: TrainConfig, stats: np.ndarray | None, ages_days, labels) -> dict:
    """`variables` with FUSION_KEY fitted on these (training) cases; unchanged when stats_fusion is off."""
    if config.stats_fusion <= 0:
        return variables
    return {**variables, FUSION_KEY: fit_fusion(stats, ages_days, labels, config)}


def fused_apply(apply_fn: Callable, config: TrainConfig) -> Callable:
    """An `apply(variables, images, ages, train=False, tumor_stats=None)` returning the pooled logits
    (module docstring); the network's own `apply_fn` when stats_fusion is off. `ages` are days, filled as
    the model's age input is; `tumor_stats` [n, len(TUMOR_STATS)]."""
    w = float(config.stats_fusion)
    if w <= 0:
        return apply_fn

    def apply(variables, images, ages, train: bool = False, tumor_stats=None, **kw):
        if tumor_stats is None:
            raise ValueError("this model pools a tumour-statistics reader: pass tumor_stats")
        net = {k: v for k, v in variables.items() if k != FUSION_KEY}
        image_logits = apply_fn(
            net, images, ages, train=train, tumor_stats=tumor_stats if config.tumor_stats else None, **kw
        )
        lr = variables[FUSION_KEY]
        x = tumor_stats.astype(jnp.float32)
        if config.use_age:
            x = jnp.concatenate([x, (ages.astype(jnp.float32) / 365.25)[:, None]], axis=1)
        z = (x - lr["mean"]) / lr["scale"]
        lr_logits = z @ lr["coef"] + lr["intercept"]
        return (1 - w) * jax.nn.log_softmax(image_logits.astype(jnp.float32), axis=-1) + w * jax.nn.log_softmax(
            lr_logits, axis=-1
        )

    return apply
