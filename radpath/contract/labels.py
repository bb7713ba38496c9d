"""Read the CSVs of a CPM-RadPath cohort: labels (`ID,class,age_in_days`) and predictions (`ID,class,...`).

Strict by design: a labels file decides what a model learns and how it is scored, so an unknown
class, a duplicate or empty ID, a non-numeric age or a missing ID column stops the run with a message
that names the file, the row and the value, instead of silently dropping or guessing.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import LabelsError
from .model_io import CLASSES

ID_COLUMNS = ("CPM_RadPath_2019_ID", "CPM_RadPath_2020_ID")
"""Accepted key columns: the 2019 training release and the 2020 validation/test releases."""


@dataclass(frozen=True)
class LabelTable:
    """Rows of a labels or predictions CSV, keyed by case ID, in file order."""

    path: Path
    id_column: str
    classes: dict[str, str | None]
    ages_days: dict[str, float | None]

    @property
    def ids(self) -> list[str]:
        return list(self.classes)


def read_label_table(path: str | Path, require_class: bool = True) -> LabelTable:
    """Parse `path`; `require_class=False` accepts releases without a class column (validation/test)."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise LabelsError(f"{path}: the file is empty; expected a header such as {ID_COLUMNS[0]},class,age_in_days")
    header = [h.strip() for h in rows[0]]
    id_cols = [h for h in header if h in ID_COLUMNS]
    if len(id_cols) != 1:
        raise LabelsError(
            f"{path}: expected exactly one ID column named {' or '.join(ID_COLUMNS)}; the header is {','.join(header)}"
        )
    id_col = id_cols[0]
    has_class = "class" in header
    if require_class and not has_class:
        raise LabelsError(f"{path}: no 'class' column; the header is {','.join(header)}")
    i_id, i_cls = header.index(id_col), header.index("class") if has_class else None
    i_age = header.index("age_in_days") if "age_in_days" in header else None
    classes: dict[str, str | None] = {}
    ages: dict[str, float | None] = {}
    problems: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            continue
        case_id = row[i_id].strip()
        if not case_id:
            problems.append(f"line {line}: empty {id_col}")
            continue
        if case_id in classes:
            problems.append(f"line {line}: duplicate ID {case_id}")
            continue
        label = row[i_cls].strip() if i_cls is not None else None
        if label is not None and label not in CLASSES:
            if label or require_class:
                problems.append(f"line {line}: class {label!r} of {case_id} is not one of {', '.join(CLASSES)}")
                continue
            label = None
        age = None
        if i_age is not None and row[i_age].strip():
            try:
                age = float(row[i_age])
            except ValueError:
                age = math.nan
            if not (math.isfinite(age) and 0 <= age < 150 * 366):
                problems.append(
                    f"line {line}: age_in_days {row[i_age]!r} of {case_id} is not a plausible number of days"
                )
                continue
        classes[case_id], ages[case_id] = label, age
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10 else "")
        raise LabelsError(f"{path}: {shown}")
    return LabelTable(path, id_col, classes, ages)
