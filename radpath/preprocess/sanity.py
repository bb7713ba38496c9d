"""Input sanity of the detection stage, as warnings with stable codes (`preprocess.findings`).

Collected here so that one call reports everything the brain mask, the intensity statistics and the
tumour detection noticed about a case; the refusals (garbage input) are raised by those steps
themselves as `CaseError`, so no caller can get an answer on garbage by forgetting to ask.
"""

from __future__ import annotations

from .brain_mask import brain_mask
from .case import Case
from .findings import QualityWarning
from .normalize import spread_warnings
from .tumor_slice import find_tumor, tumor_warnings


def detection_warnings(case: Case) -> list[QualityWarning]:
    """Warnings from the brain mask (`near-zero-background`, `brain-covers-volume`), the intensity
    spread (`low-contrast`) and the detection (`no-tumour`, `tumour-most-of-brain`).

    Runs (or reuses) the detection; raises `CaseError` where those steps refuse the case.
    """
    out = brain_mask(case).warnings(case.case_id)
    out += spread_warnings(case)
    out += tumor_warnings(case, find_tumor(case))
    return out
