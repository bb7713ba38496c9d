"""Classify a whole cohort through the server: resumable, sharded, overlapping I/O and inference.

- Output: the challenge predictions CSV of `contract.predictions_csv` (the cohort's ID column,
  `class`, the probabilities, tumour found, slice, warnings), quoted by the csv module.
- Resumable: cases already in the output are skipped; every row is written with one `write` and
  flushed, and a torn last row left by a killed process is cut off before appending.
- Failures: a case that cannot be read or is rejected goes to `<output>.failed.csv` with the
  reason, and the run goes on. A server that stays unavailable stops the run with a clear message;
  rerunning the same command continues where it stopped, without duplicate rows.
- Overlap: `workers` threads each load, preprocess and send one case, so one case's NIfTI decoding
  runs while another waits for the server (and the server can batch concurrent requests).
- Sharding: `--shard I/N` keeps the cases whose ID hashes to I modulo N: a stable split (adding
  cases does not move the others) for Kubernetes Indexed Jobs.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from radpath.contract.errors import CaseError, CohortError, LabelsError, RadPathError
from radpath.contract.model_io import CLASSES
from radpath.contract.predictions_csv import (
    LINE_END,
    PredictionRow,
    append_row,
    format_header,
    neutralise,
    prediction_header,
    read_predictions,
)
from radpath.contract.signature import DEFAULT_MODEL_NAME
from radpath.preprocess.cohort import read_cohort

from .grpc_client import Classification, GlioClient, InvalidInputError, ServingError

log = logging.getLogger(__name__)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise RadPathError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise RadPathError(f"--shard {text}: need 0 <= I < N")
    return i, n


def shard_of(case_id: str, n: int) -> int:
    return int(hashlib.sha256(case_id.encode()).hexdigest()[:12], 16) % n


def read_done(out: Path, id_column: str) -> set[str]:
    """IDs already written to `out`; repairs a torn last row; refuses a file of another cohort or format."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    try:
        table = read_predictions(out, repair=True)
    except LabelsError as exc:
        raise RadPathError(f"cannot resume: {exc}; choose another --out") from None
    if table.header != prediction_header(id_column):
        raise RadPathError(
            f"{out} exists with header {','.join(table.header)}, expected "
            f"{','.join(prediction_header(id_column))}; choose another --out"
        )
    return {r.case_id for r in table.rows}


def as_row(r: Classification) -> PredictionRow:
    return PredictionRow(
        r.case_id,
        r.label,
        tuple(r.probabilities[c] for c in CLASSES),
        r.tumor_found,
        r.slice_index,
        tuple(w["code"] for w in r.warnings),
        r.refer,
    )


@dataclass
class CohortRunSummary:
    total: int
    skipped_done: int
    written: int
    failed: list[tuple[str, str]]
    seconds: float
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Every case of this shard is in the output (nothing failed, the run was not stopped)."""
        return not self.failed and self.stopped is None


def classify_cohort(
    cohort: str | Path,
    out: str | Path,
    target: str = "localhost:8500",
    model: str = DEFAULT_MODEL_NAME,
    workers: int = 2,
    shard: str | None = None,
    tta: bool = False,
    timeout: float = 60.0,
    retries: int = 4,
    progress: bool = True,
    failed_before: list[tuple[str, str]] | None = None,
) -> CohortRunSummary:
    """`failed_before`: cases that failed an earlier step (`--prepare`), listed in OUT.failed.csv too."""
    t0 = time.perf_counter()
    out = Path(out)
    try:
        is_dir = out.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise RadPathError(f"--out {str(out)[:80]}: cannot be used ({exc.strerror})") from None
    if is_dir:
        raise RadPathError(
            f"--out {out}: is a folder; give the predictions CSV's file name, e.g. {out / 'predictions.csv'}"
        )
    try:
        co = read_cohort(cohort)
    except OSError as exc:  # a cohort path the system cannot open (too long, no permission, ...)
        raise CohortError(f"{str(cohort)[:80]}: cannot read the cohort ({exc.strerror})") from None
    failed_path = out.with_name(out.name + ".failed.csv")
    i, n = parse_shard(shard) if shard else (0, 1)
    entries = [e for e in co.entries if shard_of(e.case_id, n) == i]
    done = read_done(out, co.id_column)
    todo = [e for e in entries if e.case_id not in done]
    failed: list[tuple[str, str]] = [(cid, msg) for cid, msg in co.problems if shard_of(cid, n) == i]
    failed += failed_before or []
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists() or out.stat().st_size == 0
    written, stopped = 0, None
    client = GlioClient(target, model, timeout=timeout, retries=retries)
    with open(out, "a", newline="", encoding="utf-8") as f, ThreadPoolExecutor(max(1, workers)) as pool:
        if new_file:
            f.write(format_header(co.id_column))
            f.flush()
        bar = tqdm(total=len(todo), desc="classify", unit="case", disable=not progress)
        pending = {}
        queue = iter(todo)

        def submit_next() -> bool:
            entry = next(queue, None)
            if entry is None:
                return False
            pending[pool.submit(client.classify, entry.case_dir, entry.age_days, tta)] = entry
            return True

        for _ in range(max(1, workers) * 2):
            if not submit_next():
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                entry = pending.pop(fut)
                try:
                    r = fut.result()
                except (CaseError, InvalidInputError) as exc:
                    failed.append((entry.case_id, str(exc)))
                except ServingError as exc:  # server gone or model missing: nothing else can succeed
                    stopped = str(exc)
                except Exception as exc:  # an unexpected failure of one case must not lose the others
                    log.exception("%s failed", entry.case_id)
                    failed.append((entry.case_id, f"{type(exc).__name__}: {exc}"))
                else:
                    append_row(f, as_row(r))  # one write per row, by this thread only, flushed
                    written += 1
                bar.update()
                if stopped is None:
                    submit_next()
            if stopped is not None:
                for fut in pending:
                    fut.cancel()
                pending = {k: v for k, v in pending.items() if not k.cancelled()}
                wait(pending)
                pending.clear()
        bar.close()
        os.fsync(f.fileno())
    client.close()
    if failed:
        with open(failed_path, "w", newline="", encoding="utf-8") as ff:
            w = csv.writer(ff, lineterminator=LINE_END)
            w.writerow([co.id_column, "reason"])
            w.writerows([neutralise(cid), neutralise(reason)] for cid, reason in failed)
    elif failed_path.exists():
        failed_path.unlink()
    return CohortRunSummary(
        len(entries), len(entries) - len(todo), written, failed, round(time.perf_counter() - t0, 2), stopped
    )
