"""Classify a whole cohort through the server: resumable, sharded, overlapping I/O and inference.

- Output: the challenge submission CSV (the cohort's ID column, `class`, then p_A, p_O, p_G).
- Resumable: cases already in the output are skipped; every row is written with one `write` and
  flushed, and a torn last line left by a killed process is cut off before appending.
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

from preprocess.case import CLASSES
from preprocess.cohort import read_cohort
from preprocess.errors import CaseError, RadPathError
from preprocess.labels import prediction_header

from .grpc_client import GlioClient, InvalidInputError, ServingError

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
    """IDs already written to `out`; repairs a torn last line; refuses a file of another cohort."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    data = out.read_bytes()
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        log.warning("%s: removing an incomplete last line left by an interrupted run", out)
        with open(out, "r+b") as f:
            f.truncate(cut)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return set()
    if rows[0] != prediction_header(id_column):
        raise RadPathError(f"{out} exists with header {','.join(rows[0])}, expected {','.join(prediction_header(id_column))}; "
                           "choose another --out")
    return {r[0] for r in rows[1:] if r}


@dataclass
class CohortRunSummary:
    total: int
    skipped_done: int
    written: int
    failed: list[tuple[str, str]]
    seconds: float
    stopped: str | None = None


def classify_cohort(cohort: str | Path, out: str | Path, target: str = "localhost:8500", model: str = "glioma",
                    workers: int = 2, shard: str | None = None, tta: bool = False, timeout: float = 60.0,
                    retries: int = 4, progress: bool = True) -> CohortRunSummary:
    t0 = time.perf_counter()
    co = read_cohort(cohort)
    out = Path(out)
    failed_path = out.with_name(out.name + ".failed.csv")
    i, n = parse_shard(shard) if shard else (0, 1)
    mine = lambda case_id: shard_of(case_id, n) == i
    entries = [e for e in co.entries if mine(e.case_id)]
    done = read_done(out, co.id_column)
    todo = [e for e in entries if e.case_id not in done]
    failed: list[tuple[str, str]] = [(cid, msg) for cid, msg in co.problems if mine(cid)]
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists() or out.stat().st_size == 0
    written, stopped = 0, None
    client = GlioClient(target, model, timeout=timeout, retries=retries)
    with open(out, "a", newline="") as f, ThreadPoolExecutor(max(1, workers)) as pool:
        if new_file:
            f.write(",".join(prediction_header(co.id_column)) + "\n")
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
                    line = ",".join([r.case_id, r.label] + [f"{r.probabilities[c]:.6f}" for c in CLASSES]) + "\n"
                    f.write(line)  # one write per row, by this thread only, flushed: never half a row
                    f.flush()
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
        with open(failed_path, "w", newline="") as ff:
            w = csv.writer(ff)
            w.writerow([co.id_column, "reason"])
            w.writerows(failed)
    elif failed_path.exists():
        failed_path.unlink()
    return CohortRunSummary(len(entries), len(entries) - len(todo), written, failed,
                            round(time.perf_counter() - t0, 2), stopped)


def merge_predictions(out: str | Path, shards: list[str | Path]) -> int:
    """Concatenate shard CSVs (same header) into `out`; refuses duplicate case IDs. Returns rows."""
    header, rows, seen = None, [], {}
    for path in shards:
        with open(path, newline="") as f:
            data = list(csv.reader(f))
        if not data:
            raise RadPathError(f"{path}: empty shard file")
        if header is None:
            header = data[0]
        elif data[0] != header:
            raise RadPathError(f"{path}: header {','.join(data[0])} differs from {','.join(header)}")
        for r in data[1:]:
            if r[0] in seen:
                raise RadPathError(f"case {r[0]} appears in both {seen[r[0]]} and {path}")
            seen[r[0]] = path
            rows.append(r)
    rows.sort(key=lambda r: r[0])
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return len(rows)
