"""When the answer is "refer": one policy for the CLI, the cohort CSV, the gRPC client and the web page.

A classification is referred (shown, but flagged "not sure: refer to a specialist review") when
- the model's confidence was never assessed: its refer threshold is fitted only on a held-out split
  of at least MIN_THRESHOLD_CASES cases (`train.calibration`); a model without one (None, or the
  NOT_ASSESSED marker a run with too few held-out cases exports) refers every answer;
- its top-class probability (calibrated, averaged over the test-time views) is below the model's
  refer threshold, chosen on the held-out split so that accepted cases err at most 5 % (served as
  the `refer_threshold` output of `contract.signature`);
- its top-class probability is within UNIFORM_MARGIN of uniform (1/3 for three classes): the model
  does not know, whatever threshold it carries;
- the input carries a warning that puts it outside what the model was trained on or makes any answer
  unreliable (REFER_CODES): no (confident) tumour, files in the wrong slots, not skull-stripped,
  resampled or interpolated files, an estimated brain mask, a "tumour" that is most of the brain,
  garbage-like intensities. Each such warning is its own reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model_io import CLASSES

REFER_CODES: tuple[str, ...] = (
    "no-tumour",
    "tumour-uncertain",
    "tumour-most-of-brain",
    "brain-covers-volume",
    "low-contrast",
    "not-skull-stripped",
    "resampled",
    "near-zero-background",
    "swap-flair-t2",
    "swap-t1-t1ce",
)
"""Warning codes (preprocess.findings) that refer a case whatever the model's confidence."""

MIN_THRESHOLD_CASES = 30
"""Fewest held-out cases on which a refer threshold is fitted; below it the threshold is not assessed."""

NOT_ASSESSED = 2.0
"""The `refer_threshold` a model carries when its confidence was not assessed (above any
probability, so even a client that only compares refers every answer)."""

UNIFORM_MARGIN = 0.1
"""A top probability within this of uniform (1 / number of classes) is always referred."""

REFER_MAX_ERROR = 0.05
"""Target error rate of the accepted (not referred) held-out cases when the threshold is fitted."""


def threshold_assessed(threshold: float | None) -> bool:
    """Whether a model's refer threshold was fitted (on >= MIN_THRESHOLD_CASES held-out cases). A fitted
    threshold is a top-class probability, so at least 1 / len(CLASSES); models exported before this rule
    carried 0.0 for "no threshold", and NOT_ASSESSED is above 1: neither counts."""
    return threshold is not None and 1.0 / len(CLASSES) <= threshold <= 1.0


def refer_reasons(
    probabilities: Mapping[str, float], threshold: float | None, warnings: Iterable[Mapping[str, str]]
) -> list[str]:
    """Plain-language reasons to refer (empty: the answer stands). `threshold` None or NOT_ASSESSED:
    the model's confidence was not assessed, so every answer is referred."""
    reasons = []
    top = max(probabilities.values()) if probabilities else 0.0
    uniform = 1.0 / len(probabilities) if probabilities else 0.0
    if not threshold_assessed(threshold):
        reasons.append(
            "confidence not assessed: this model has no refer threshold (it needs a held-out split of at "
            f"least {MIN_THRESHOLD_CASES} cases), so every answer is referred"
        )
    elif threshold is not None and top < threshold:
        reasons.append(
            f"low confidence: top probability {top:.2f} is below the model's refer threshold "
            f"{threshold:.2f} (chosen so accepted held-out cases err at most {100 * REFER_MAX_ERROR:.0f} %)"
        )
    if top - uniform < UNIFORM_MARGIN:
        reasons.append(
            f"no real preference: top probability {top:.2f} is within {UNIFORM_MARGIN} of uniform ({uniform:.2f})"
        )
    for w in warnings:
        code = w.get("code")
        if code in REFER_CODES:
            reasons.append(f"input warning {code}: {w.get('message', '')}".rstrip(": "))
    return reasons
