"""Which series is FLAIR, T1, T1ce and T2, with the reason for each (a user's flag overrides).

Evidence, strongest first:
1. The words a technologist typed: series description and protocol name ("FLAIR", "T2", "T1 POST
   GAD", "MPRAGE +C", ...), matched as whole tokens.
2. The physics, from the sequence tags, when the words say nothing: an inversion pulse with TI
   >= 1500 ms and TE >= 70 ms is FLAIR; TR >= 2000 ms and TE >= 70 ms without inversion is T2;
   TE <= 30 ms with TR <= 1000 ms (spin/gradient echo) or an inversion with TI 600-1300 ms
   (MPRAGE) is T1.
3. Contrast: a Contrast/Bolus Agent tag, or "post", "gad", "+c", "gd", "ce", "contrast" in the
   words, turns a T1 into T1ce.

Series that are not candidates are set aside with their reason (not MR, localiser, derived or
reformatted, diffusion/perfusion, too few slices). Two candidates for one slot are never settled by
a guess: the error names both and the flag that chooses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radpath.contract.model_io import CHANNELS as SEQUENCES

from .dicom_series import IMAGE_SOP_CLASSES, Series
from .errors import SeriesAssignmentError

MIN_SLICES = 3
_FLAIR_WORDS = {"flair", "fla", "tirm", "darkfluid", "dark_fluid", "t2flair", "t2_flair"}
_T2_WORDS = {"t2", "t2w", "tse2d1", "t2_tse", "t2tse"}
_T1_WORDS = {"t1", "t1w", "mprage", "mp_rage", "spgr", "bravo", "tfl3d", "se2d1", "t1_se", "t1_mprage", "fspgr"}
_T1_WORDS |= {"t1c", "t1ce", "t1gd", "t1post"}  # T1 words that also say contrast (below)
_CONTRAST_WORDS = {
    "post",
    "gad",
    "gd",
    "ce",
    "+c",
    "c+",
    "contrast",
    "kontrast",
    "km",
    "postcontrast",
    "t1c",
    "t1ce",
    "t1gd",
    "mdc",
}
_SKIP_WORDS = {
    "localizer": "a localiser",
    "localiser": "a localiser",
    "loc": "a localiser",
    "scout": "a localiser",
    "survey": "a localiser",
    "3plane": "a localiser",
    "aahead_scout": "a localiser",
    "dwi": "diffusion",
    "adc": "diffusion",
    "trace": "diffusion",
    "dti": "diffusion",
    "diffusion": "diffusion",
    "perfusion": "perfusion",
    "perf": "perfusion",
    "dsc": "perfusion",
    "dce": "perfusion",
    "asl": "perfusion",
    "swi": "susceptibility",
    "mip": "a reformat",
    "mpr": "a reformat",
}


@dataclass(frozen=True)
class Choice:
    """One slot's series and why (shown in the report, the CLI and the web page)."""

    sequence: str
    series: Series
    reason: str


def _tokens(*texts: str) -> set[str]:
    out: set[str] = set()
    for t in texts:
        low = t.lower()
        out.update(w for w in re.split(r"[\s_\-/\\.,;:()\[\]]+", low) if w)
        out.update(re.findall(r"[+]c|c[+]", low))
        out.update(w for w in re.split(r"[\s\-/\\.,;:()\[\]]+", low) if w)  # keep 't2_flair' whole too
    return out


def skip_reason(s: Series) -> str | None:
    """Why a series cannot be one of the four (None: it can)."""
    if s.modality and s.modality != "MR":
        return f"modality {s.modality}, not MR"
    if s.sop_class and s.sop_class not in IMAGE_SOP_CLASSES:
        return "not an MR image object (a report, presentation state or secondary capture?)"
    image_type = s.facts.get("image_type", "").upper()
    if "LOCALIZER" in image_type:
        return "a localiser (ImageType LOCALIZER)"
    words = _tokens(s.description, s.protocol)
    for w, why in _SKIP_WORDS.items():
        if w in words:
            return f'{why} ("{w}" in its description)'
    if image_type.startswith("DERIVED") and (
        "MPR" in image_type or "PROJECTION" in image_type or "REFORMAT" in image_type
    ):
        return f"derived from another series ({image_type})"
    if s.frames < MIN_SLICES:
        return f"{s.frames} image(s): a localiser or 2-D image, not a volume"
    return None


def _by_physics(s: Series) -> tuple[str | None, str]:
    f = s.facts
    tr, te, ti = f.get("repetition_time_ms"), f.get("echo_time_ms"), f.get("inversion_time_ms")
    params = ", ".join(
        f"{name} {v:g} ms" for name, v in (("TR", tr), ("TE", te), ("TI", ti)) if isinstance(v, int | float)
    )
    inverted = (ti or 0) > 0 or "IR" in f.get("scanning_sequence", "").upper().split("\\")
    if inverted and (ti or 0) >= 1500 and (te or 0) >= 70:
        return "flair", f"inversion recovery with long TI and TE ({params})"
    if not inverted and (tr or 0) >= 2000 and (te or 0) >= 70:
        return "t2", f"long TR and TE without inversion ({params})"
    if te is not None and te <= 30 and tr is not None and tr <= 1000:
        return "t1", f"short TR and TE ({params})"
    if inverted and ti is not None and 600 <= ti <= 1300 and (te or 99) <= 10:
        return "t1", f"inversion-prepared gradient echo, MPRAGE-like ({params})"
    return None, params or "no sequence timing in its tags"


def classify(s: Series) -> tuple[str | None, str]:
    """(slot or None, reason) for one candidate series."""
    words = _tokens(s.description, s.protocol, s.facts.get("sequence_name", ""))
    from_name = s.facts.get("words_from") == "file name"
    said = "the file name" if from_name else f'"{s.description or s.protocol}"'

    def says(found: set[str], what: str) -> str:
        # a file name may carry more than words (IDs, dates): quote only the words that decided
        return f"{said} has {', '.join(repr(w) for w in sorted(found))}" if from_name else f"{said} says {what}"

    kind, why = None, ""
    if words & _FLAIR_WORDS:
        kind, why = "flair", says(words & _FLAIR_WORDS, "FLAIR")
    elif words & _T2_WORDS and not words & _T1_WORDS:
        kind, why = "t2", says(words & _T2_WORDS, "T2")
    elif words & _T1_WORDS:
        kind, why = "t1", says(words & _T1_WORDS, "T1")
    else:
        kind, why = _by_physics(s)
        why = f"no sequence named in {said}; {why}"
    if kind == "t1":
        agent = s.facts.get("contrast_agent", "")
        hits = words & _CONTRAST_WORDS
        if agent:
            return "t1ce", f"{why}, Contrast/Bolus Agent tag set"
        if hits:
            return (
                "t1ce",
                f"{why}, with contrast ({', '.join(sorted(hits))} in {'it' if from_name else 'its description'})",
            )
        return "t1", f"{why}, no contrast agent in {'it' if from_name else 'tags or description'}"
    return kind, why


def assign(series: list[Series], overrides: dict[str, str] | None = None) -> tuple[dict[str, Choice], list[dict]]:
    """The four choices and the list of series set aside (each with its reason).

    `overrides` maps a sequence to the user's key for a series (number, UID or exact description).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v}
    chosen: dict[str, Choice] = {}
    used: set[str] = set()
    for seq, key in overrides.items():
        hits = [s for s in series if s.matches(key)]
        if len(hits) != 1:
            names = ", ".join(s.label for s in series)
            what = "no series" if not hits else f"{len(hits)} series"
            raise SeriesAssignmentError(f"--{seq} {key}: {what} match (series here: {names})")
        chosen[seq] = Choice(seq, hits[0], f"chosen by --{seq} {key}")
        used.add(hits[0].uid)
    candidates: dict[str, list[tuple[Series, str]]] = {q: [] for q in SEQUENCES}
    set_aside: list[dict] = []
    for s in series:
        if s.uid in used:
            continue
        why_not = skip_reason(s)
        kind, why = (None, why_not) if why_not else classify(s)
        if kind is None or kind in chosen:
            reason = why_not or (f"{why}; {kind} was chosen by flag" if kind else f"not recognised: {why}")
            set_aside.append({"series": s.label, "reason": reason})
            continue
        candidates[kind].append((s, why))
    for seq in SEQUENCES:
        if seq in chosen:
            continue
        found = candidates[seq]
        if not found:
            aside = "; ".join(f"{d['series']}: {d['reason']}" for d in set_aside) or "none"
            raise SeriesAssignmentError(
                f"no {seq.upper()} series found (set aside: {aside}); if one is there, name it with --{seq} SERIES"
            )
        if len(found) > 1:
            names = " and ".join(s.label for s, _ in found)
            raise SeriesAssignmentError(
                f"{len(found)} candidates for {seq.upper()}: {names}; choose one with --{seq} SERIES_NUMBER"
            )
        s, why = found[0]
        chosen[seq] = Choice(seq, s, why)
    return {q: chosen[q] for q in SEQUENCES}, set_aside
