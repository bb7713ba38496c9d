"""When the answer is "refer": one policy for the CLI, the cohort CSV, the gRPC client and the web page.

A classification is referred (shown, but flagged "not sure: refer to a specialist review") when
- its top-class probability (calibrated, averaged over the test-time views) is below the model's
  refer threshold, which training chose on its held-out split so that accepted cases err at most
  5 % (`train.calibration`; served as the `refer_threshold` output of `contract.signature`), or
- the input carries a warning that makes any answer unreliable (REFER_CODES): no tumour found,
  files in the wrong slots, not skull-stripped, a "tumour" that is most of the brain, garbage-like
  intensities. `resampled` and `near-zero-background` alone do not refer: they are handled inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

REFER_CODES: tuple[str, ...] = (
    "no-tumour",
    "tumour-uncertain",
    "tumour-most-of-brain",
    "brain-covers-volume",
    "low-contrast",
    "not-skull-stripped",
    "swap-flair-t2",
    "swap-t1-t1ce",
)
"""Warning codes (preprocess.findings) that refer a case whatever the model's confidence."""


def refer_reasons(
    probabilities: Mapping[str, float], threshold: float | None, warnings: Iterable[Mapping[str, str]]
) -> list[str]:
    """Plain-language reasons to refer (empty: the answer stands). `threshold` None: the model has
    no refer threshold (exported without a held-out split), so confidence alone never refers."""
    reasons = []
    top = max(probabilities.values()) if probabilities else 0.0
    if threshold is not None and top < threshold:
        reasons.append(
            f"low confidence: top probability {top:.2f} is below the model's refer threshold "
            f"{threshold:.2f} (chosen so accepted held-out cases err at most 5 %)"
        )
    for w in warnings:
        if w.get("code") in REFER_CODES:
            reasons.append(f"input warning {w['code']}: {w.get('message', '')}".rstrip(": "))
    return reasons
