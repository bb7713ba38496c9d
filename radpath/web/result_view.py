"""What the result page and "My cases" say about a stored result: each warning once, in words for
people, and never "confident enough to stand" unless the model's refer threshold was assessed.

The stored result is what the worker wrote (the client's `Classification.as_dict()` plus pictures):
its `refer_reasons` are the contract's words (`contract.refer`) and are shown as they are, except
that reasons which only restate an input warning point to the warning list instead of repeating it,
and the internal case ID (the upload's 32-character key, which preprocess puts in front of every
message) is taken out. Results stored by older versions are read the same way.
"""

from __future__ import annotations

import re
from typing import Any

from radpath.contract import refer

_CASE_ID = re.compile(r"\b[0-9a-f]{32}\b(?:: )?")
TUMOUR_CODES = ("no-tumour", "tumour-uncertain")
"""Shown as the one "no tumour" paragraph under the class, not again in the warning list."""


def threshold_assessed(threshold: object) -> bool:
    """The contract's rule (`contract.refer.threshold_assessed`: fitted on enough held-out cases, not
    NOT_ASSESSED), and never 0.0: exports before that rule wrote 0.0 for "no threshold", and a fitted
    threshold is a top-class probability, so never below 1 / number of classes."""
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        return False
    return refer.threshold_assessed(float(threshold)) and float(threshold) > 0.0


def without_case_id(text: str) -> str:
    """`text` without the internal case ID (the page already names the case)."""
    return _CASE_ID.sub("", text)


def present(result: dict[str, Any] | None) -> dict[str, Any]:
    """{stands, refer, assessed, reasons, warnings, tumour_note, zoom_target, stats_subject (what the tumour
    statistics describe; None: no tumour, so they describe nothing), heading} for the page; {} without a
    result."""
    if not result:
        return {}
    warnings, seen = [], set()
    for w in result.get("warnings") or []:
        code = str(w.get("code", ""))
        if code in seen:
            continue
        seen.add(code)
        warnings.append({"code": code, "message": without_case_id(str(w.get("message", "")))})
    codes = [w["code"] for w in warnings]
    reasons: list[str] = []
    restated: list[str] = []
    for reason in result.get("refer_reasons") or []:
        m = re.match(r"input warning ([a-z0-9-]+)\b", reason)
        if m and m.group(1) in codes:
            restated.append(m.group(1))
        else:
            reasons.append(without_case_id(reason))
    assessed = threshold_assessed(result.get("refer_threshold"))
    if not assessed and not any("not assessed" in r for r in reasons):
        reasons.insert(
            0,
            "confidence not assessed: this model version has no refer threshold fitted on a held-out split "
            f"of at least {refer.MIN_THRESHOLD_CASES} cases, so no answer of it can stand on its own",
        )
    if restated:
        reasons.append("input warnings that make any answer unreliable (see below): " + ", ".join(restated))
    referred = bool(result.get("refer")) or bool(reasons)
    found = bool(result.get("tumor_found"))
    for w in warnings:
        w["refers"] = w["code"] in restated
    tumour_note = None
    zoom_target = "the tumour"  # what the model input's second view is centred on (preprocess.model_input)
    stats_subject = "the whole found tumour"  # what preprocess.tumor_stats measured (models that read them)
    if not found:
        uncertain = "tumour-uncertain" in codes
        tumour_note = "the most suspicious slice" if uncertain else "a slice through the brain's centre"
        zoom_target = "the most suspicious region" if uncertain else "the brain's centre (no tumour found)"
        stats_subject = "the most suspicious region (no confident tumour)" if uncertain else None
    return {
        "refer": referred,
        "stands": not referred and assessed,
        "assessed": assessed,
        "reasons": reasons,
        "warnings": [w for w in warnings if found or w["code"] not in TUMOUR_CODES],
        "warning_count": len(warnings),
        "tumour_note": tumour_note,
        "zoom_target": zoom_target,
        "stats_subject": stats_subject,
    }
