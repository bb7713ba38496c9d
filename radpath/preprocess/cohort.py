"""Find the cases of a CPM-RadPath cohort folder and load them, reporting bad cases instead of stopping.

Layout (see README): `ROOT/Radiology/<ID>/<ID>_{flair,t1,t1ce,t2}.nii[.gz]`, optionally
`ROOT/training_data_classification_labels.csv`. Cases are found by folder; the CSV adds class and
age. Nothing is dropped silently: every case that cannot be used ends up in `Cohort.problems` (or,
when its files fail their checks, in the caller's list of failed cases), and the caller's report
lists them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from radpath.contract.errors import CohortError
from radpath.contract.labels import ID_COLUMNS, LabelTable, read_label_table

log = logging.getLogger(__name__)

LABELS_FILE = "training_data_classification_labels.csv"


@dataclass(frozen=True)
class CohortEntry:
    case_id: str
    case_dir: Path
    label: str | None
    age_days: float | None


@dataclass(frozen=True)
class Cohort:
    root: Path
    id_column: str
    entries: list[CohortEntry]
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(case ID, what is wrong) for cases that cannot be used at all (e.g. listed but absent)."""

    def labelled(self) -> list[CohortEntry]:
        return [e for e in self.entries if e.label is not None]


def _find_labels(root: Path) -> Path | None:
    standard = root / LABELS_FILE
    if standard.is_file():
        return standard
    for csv_path in sorted(root.glob("*.csv")):
        if not csv_path.is_file():  # e.g. a folder named *.csv: not a labels file
            continue
        try:
            with open(csv_path, encoding="utf-8-sig") as f:
                fields = {h.strip() for h in f.readline(64 * 1024).split(",")}
        except UnicodeDecodeError as exc:
            raise CohortError(
                f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the labels CSV as UTF-8 "
                "or move the file out of the cohort folder"
            ) from None
        except OSError as exc:
            raise CohortError(f"{csv_path}: cannot be read ({exc.strerror})") from None
        if fields & set(ID_COLUMNS) and "class" in fields:
            return csv_path
    return None


def read_cohort(root: str | Path, labels: str | Path | None = None) -> Cohort:
    """Index the cohort at `root`; `labels` overrides the CSV found in `root` (if any)."""
    root = Path(root)
    radiology = root / "Radiology"
    if not radiology.is_dir():
        hint = " (pass the cohort root, the folder that holds Radiology/)" if root.name == "Radiology" else ""
        raise CohortError(
            f"{root}: no Radiology/ folder; expected the CPM-RadPath layout "
            f"ROOT/Radiology/<ID>/<ID>_flair.nii.gz ...{hint}"
        )
    labels_path = Path(labels) if labels else _find_labels(root)
    table: LabelTable | None = read_label_table(labels_path, require_class=False) if labels_path else None
    folders = {p.name: p for p in sorted(radiology.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise CohortError(f"{radiology}: holds no case folders")
    entries, problems = [], []
    for case_id, case_dir in folders.items():
        label = table.classes.get(case_id) if table else None
        age = table.ages_days.get(case_id) if table else None
        if table and case_id not in table.classes:
            log.warning("%s: case folder has no row in %s (no class, no age)", case_id, table.path.name)
        entries.append(CohortEntry(case_id, case_dir, label, age))
    if table:
        for case_id in table.ids:
            if case_id not in folders:
                problems.append((case_id, f"listed in {table.path.name} but {radiology / case_id} does not exist"))
    id_column = table.id_column if table else ID_COLUMNS[0]
    return Cohort(root, id_column, entries, problems)
