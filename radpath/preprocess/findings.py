"""Warnings about a case: one type, stable codes, one place that collects them.

A warning is not a rejection: the case is still classified, but every consumer (the CLI's
`inspect --json` and `classify --json`, the gRPC client's result, the cohort CSV's `warnings`
column, the web result page) shows it, and the refer flag may fire on it. Codes are part of the
public contract: never rename one; add new ones to `CODES`.

Inputs too broken to classify at all raise `CaseError` instead (never a confident answer on garbage).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CODES: dict[str, str] = {
    # the brain mask and intensity sanity (preprocess.brain_mask / preprocess.tumor_slice)
    "no-tumour": "no FLAIR/T2-hyperintense lesion found; the slice is the brain's centre",
    "tumour-uncertain": "no confident lesion; the slice shows the most suspicious region",
    "near-zero-background": (
        "the background is not exactly zero (resampled or float data); the brain mask was estimated"
    ),
    "brain-covers-volume": "the estimated brain covers most of the volume",
    "low-contrast": "the intensity spread inside the brain is very small",
    "tumour-most-of-brain": "the detected 'tumour' covers an implausibly large part of the brain",
    # acquisition and file checks (preprocess.quality)
    "not-skull-stripped": "much signal outside a brain-shaped mask: the scan does not look skull-stripped",
    "resampled": "not on the 1 mm BraTS grid (voxel size, or interpolation residue); results may be less reliable",
    "swap-flair-t2": "FLAIR and T2 look swapped (judged from CSF contrast)",
    "swap-t1-t1ce": "T1 and T1ce look swapped (judged from enhancement)",
}
"""Every warning code the project emits, with a one-line meaning."""


@dataclass(frozen=True)
class QualityWarning:
    """One warning: a stable `code` (a key of CODES) and a message for people."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown warning code {self.code!r}; add it to preprocess.findings.CODES")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
