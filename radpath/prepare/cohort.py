"""Prepare a folder of studies into a cohort in the release layout (for `classify-cohort --prepare`).

Each entry of `studies` (a sub-folder or a `.zip`) is one study; its name (without `.zip`) is the
case ID, so the person who named the folders chooses what appears in the outputs. Resumable: a
study whose `ID_prepare.json` and four files exist is not prepared again. A study that fails is
listed with its one-line reason (`OUT/prepare.failed.csv`) and the others go on.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable
from pathlib import Path

from radpath.contract.errors import RadPathError

from .errors import StudyError
from .pipeline import prepare_study

log = logging.getLogger(__name__)
FAILED_CSV = "prepare.failed.csv"


def _case_id(entry: Path) -> str:
    name = entry.name[:-4] if entry.name.lower().endswith(".zip") else entry.name
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:64]


def is_prepared(case_dir: Path, case_id: str) -> bool:
    names = [f"{case_id}_prepare.json"] + [f"{case_id}_{q}.nii.gz" for q in ("flair", "t1", "t1ce", "t2")]
    return all((case_dir / n).is_file() for n in names)


def prepare_cohort(
    studies: str | Path, out_root: str | Path, on_study: Callable[[str, int, int], None] | None = None
) -> tuple[Path, list[tuple[str, str]]]:
    """`out_root/Radiology/<ID>/...` for every study; returns (out_root, [(ID, reason) of failures])."""
    studies, out_root = Path(studies), Path(out_root)
    if not studies.is_dir():
        raise StudyError(f"{studies}: not a folder of studies (one sub-folder or .zip per patient)")
    entries = sorted(
        p for p in studies.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.name.lower().endswith(".zip"))
    )
    if not entries:
        raise StudyError(f"{studies}: holds no study (one sub-folder or .zip per patient)")
    radiology = out_root / "Radiology"
    radiology.mkdir(parents=True, exist_ok=True)
    failed: list[tuple[str, str]] = []
    for i, entry in enumerate(entries, 1):
        case_id = _case_id(entry)
        if on_study:
            on_study(case_id, i, len(entries))
        if is_prepared(radiology / case_id, case_id):
            continue
        try:
            prepare_study(entry, radiology, case_id)
        except RadPathError as exc:
            failed.append((case_id, str(exc)))
        except Exception as exc:  # one broken study must not stop the cohort
            log.exception("%s failed", case_id)
            failed.append((case_id, f"{type(exc).__name__}: {exc}"))
    with open(out_root / FAILED_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "reason"])
        w.writerows(failed)
    return out_root, failed
