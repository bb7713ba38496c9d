"""The challenge predictions CSV: one header, one writer, one reader, one merge.

    CPM_RadPath_2019_ID,class,p_A,p_O,p_G,tumor_found,slice_index,warnings
    CPM19_CBICA_AAB_1,G,0.020000,0.030000,0.950000,true,77,
    CPM19_TCIA_ABC_1,A,0.810000,0.120000,0.070000,false,70,no-tumour

The first two columns are the challenge submission format (the cohort's own ID column name, then
`class`); the probabilities follow in `model_io.CLASSES` order; then what the reader of a result
needs to trust it: whether a tumour was found, the axial slice used, and the warning codes of
`preprocess.findings` joined by ";". Training's prediction files leave the last three empty.

Written and read with Python's csv module both ways: an ID holding a comma, quote or newline
round-trips. Spreadsheet formula injection is neutralised: a cell that starts with `=`, `+`, `-`,
`@`, a tab or a carriage return (or with `'`, so the rule is reversible) is written with a leading
`'`, which `read_predictions` removes again. Every error names the file and the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from radpath.contract.errors import LabelsError

from .model_io import CLASSES

ID_COLUMNS = ("CPM_RadPath_2019_ID", "CPM_RadPath_2020_ID")
"""Accepted key columns: the 2019 training release and the 2020 validation/test releases."""
PROBABILITY_COLUMNS = tuple(f"p_{c}" for c in CLASSES)
DETAIL_COLUMNS = ("tumor_found", "slice_index", "warnings", "refer")
"""`refer`: true when the answer should go to specialist review (`contract.refer`)."""
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make spreadsheets evaluate a cell (OWASP CSV injection)."""
WARNING_SEPARATOR = ";"
LINE_END = "\r\n"
"""RFC 4180 line ends: with them the csv module also quotes a cell holding a lone carriage return."""


def prediction_header(id_column: str = ID_COLUMNS[0]) -> list[str]:
    """The header of every predictions CSV the project writes."""
    return [id_column, "class", *PROBABILITY_COLUMNS, *DETAIL_COLUMNS]


@dataclass(frozen=True)
class PredictionRow:
    case_id: str
    label: str
    probabilities: tuple[float, ...] = ()
    """In CLASSES order; empty when the file has no probability columns."""
    tumor_found: bool | None = None
    slice_index: int | None = None
    warnings: tuple[str, ...] = ()
    refer: bool | None = None


def _flag(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


@dataclass(frozen=True)
class PredictionTable:
    path: Path
    header: list[str]
    rows: list[PredictionRow] = field(default_factory=list)

    @property
    def id_column(self) -> str:
        return self.header[0]


def neutralise(cell: str) -> str:
    """`cell` safe to open in a spreadsheet (see the module docstring); `restore` reverses it."""
    return "'" + cell if cell.startswith(FORMULA_LEADS + ("'",)) else cell


def restore(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def format_row(row: PredictionRow) -> str:
    """One CSV line (quoted as needed, ending in a newline) for `row`."""
    probs = [f"{p:.6f}" for p in row.probabilities] if row.probabilities else [""] * len(CLASSES)
    cells = [
        neutralise(row.case_id),
        row.label,
        *probs,
        _flag(row.tumor_found),
        "" if row.slice_index is None else str(int(row.slice_index)),
        neutralise(WARNING_SEPARATOR.join(row.warnings)),
        _flag(row.refer),
    ]
    buf = io.StringIO()
    csv.writer(buf, lineterminator=LINE_END).writerow(cells)
    return buf.getvalue()


def format_header(id_column: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=LINE_END).writerow(prediction_header(id_column))
    return buf.getvalue()


def write_predictions(path: str | Path, id_column: str, rows: Iterable[PredictionRow]) -> None:
    """Write a whole predictions file atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(format_header(id_column))
        for r in rows:
            f.write(format_row(r))
    tmp.replace(path)


def append_row(f: TextIO, row: PredictionRow) -> None:
    """Append one row with a single write, flushed: a killed process leaves at most a torn last row,
    which `read_predictions(..., repair=True)` cuts off."""
    f.write(format_row(row))
    f.flush()


def _parse_row(path: Path, line: int, header: list[str], cells: list[str]) -> PredictionRow:
    where = f"{path}: line {line}"
    if len(cells) != len(header):
        raise LabelsError(f"{where}: {len(cells)} fields, the header has {len(header)}")
    col = dict(zip(header, cells))
    case_id = restore(cells[0])  # exact: IDs are folder names, compared as written
    if not case_id.strip():
        raise LabelsError(f"{where}: empty {header[0]}")
    label = col["class"].strip()
    if label not in CLASSES:
        raise LabelsError(f"{where}: class {label!r} of {case_id} is not one of {', '.join(CLASSES)}")
    probs: tuple[float, ...] = ()
    if all(c in col for c in PROBABILITY_COLUMNS) and any(col[c].strip() for c in PROBABILITY_COLUMNS):
        try:
            probs = tuple(float(col[c]) for c in PROBABILITY_COLUMNS)
        except ValueError:
            raise LabelsError(
                f"{where}: probabilities {[col[c] for c in PROBABILITY_COLUMNS]} of {case_id} are not numbers"
            ) from None
        if not all(math.isfinite(p) and 0 <= p <= 1 for p in probs):
            raise LabelsError(f"{where}: probabilities {list(probs)} of {case_id} are not in [0, 1]")
    found = col.get("tumor_found", "").strip().lower()
    if found not in ("", "true", "false"):
        raise LabelsError(f"{where}: tumor_found {found!r} of {case_id}: expected true, false or empty")
    slice_text = col.get("slice_index", "").strip()
    if slice_text and not slice_text.isdigit():
        raise LabelsError(f"{where}: slice_index {slice_text!r} of {case_id} is not a slice number")
    warnings = restore(col.get("warnings", "")).strip()
    refer = col.get("refer", "").strip().lower()
    if refer not in ("", "true", "false"):
        raise LabelsError(f"{where}: refer {refer!r} of {case_id}: expected true, false or empty")
    return PredictionRow(
        case_id,
        label,
        probs,
        None if not found else found == "true",
        int(slice_text) if slice_text else None,
        tuple(w for w in warnings.split(WARNING_SEPARATOR) if w),
        None if not refer else refer == "true",
    )


def read_predictions(path: str | Path, repair: bool = False) -> PredictionTable:
    """Parse a predictions CSV strictly: header (an ID column of ID_COLUMNS, then `class`), one row
    per case, no duplicate, no blank line. `repair=True` (resuming `classify-cohort`) cuts off a torn
    last row left by a killed run instead of failing on it."""
    path = Path(path)
    if not path.exists():
        raise LabelsError(f"{path}: file not found")
    if not path.is_file():
        raise LabelsError(f"{path}: is not a file")
    raw = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start + bom})") from None
    if repair and text and (not text.endswith("\n") or not _parses(text)):
        text = _cut_torn_row(path, text, bom)
    try:
        records = list(_records(text))
    except csv.Error as exc:
        raise LabelsError(f"{path}: not a readable CSV file ({exc})") from None
    if not records:
        raise LabelsError(f"{path}: the file is empty; expected the header {','.join(prediction_header())}")
    header = [h.strip() for h in records[0][1]]
    if len(header) < 2 or header[0] not in ID_COLUMNS or header[1] != "class":
        raise LabelsError(
            f"{path}: header {','.join(header)}; expected it to start with {' or '.join(ID_COLUMNS)},class"
        )
    rows: list[PredictionRow] = []
    seen: dict[str, int] = {}  # case id -> line
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            raise LabelsError(
                f"{path}: line {line} is blank; a predictions file has one row per case (remove the blank line)"
            )
        row = _parse_row(path, line, header, cells)
        if row.case_id in seen:
            raise LabelsError(f"{path}: line {line}: duplicate ID {row.case_id} (first on line {seen[row.case_id]})")
        seen[row.case_id] = line
        rows.append(row)
    return PredictionTable(path, header, rows)


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) per CSV record; quoted newlines stay inside their record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _parses(text: str) -> bool:
    try:
        list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return False
    return True


def _cut_torn_row(path: Path, text: str, bom: int) -> str:
    """Drop the torn last record (truncating the file) and return what is left. The last record is
    torn when the file does not end with a newline, or ends inside a quoted field (an ID holding a
    newline); either way, cut back to the last newline after which the text parses."""
    kept = text[: text.rfind("\n") + 1] if not text.endswith("\n") else text[: text.rfind("\n", 0, len(text) - 1) + 1]
    while kept and not _parses(kept):
        kept = kept[: kept.rfind("\n", 0, len(kept) - 1) + 1]
    logging.getLogger(__name__).warning("%s: removing an incomplete last row left by an interrupted run", path)
    with open(path, "r+b") as f:
        f.truncate(bom + len(kept.encode("utf-8")))
    return kept


def merge_predictions(out: str | Path, shards: list[str | Path]) -> int:
    """Concatenate shard CSVs (same header) into `out`, sorted by ID; refuses duplicate IDs. Returns rows."""
    header: list[str] | None = None
    rows: list[PredictionRow] = []
    seen: dict[str, str | Path] = {}  # case id -> shard
    for path in shards:
        table = read_predictions(path)
        if header is None:
            header = table.header
        elif table.header != header:
            raise LabelsError(f"{path}: header {','.join(table.header)} differs from {','.join(header)}")
        for r in table.rows:
            if r.case_id in seen:
                raise LabelsError(f"case {r.case_id} appears in both {seen[r.case_id]} and {path}")
            seen[r.case_id] = path
            rows.append(r)
    if header is None:
        raise LabelsError("no shard files given")
    if header != prediction_header(header[0]):
        raise LabelsError(f"{shards[0]}: header {','.join(header)}; expected {','.join(prediction_header(header[0]))}")
    out = Path(out)
    if out.is_dir():
        raise LabelsError(f"{out}: is a folder; give the merged CSV's file name")
    write_predictions(out, header[0], sorted(rows, key=lambda r: r.case_id))
    return len(rows)
