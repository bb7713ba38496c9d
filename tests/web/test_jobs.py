"""The job queue: leases, take-over after a worker dies, exactly one result; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from radpath.web import audit, auth, jobs
from radpath.web.db import cases, engine_for
from tests.web.conftest import PASSWORD


def _owner(engine) -> int:
    return auth.add_user(engine, f"u{time.monotonic_ns() % 10**9}", PASSWORD)


def test_claim_finish_exactly_once(db_url):
    engine = engine_for(db_url)
    uid = _owner(engine)
    jobs.enqueue(engine, "a" * 32, uid, {"flair": "f.nii.gz"}, None)
    first = jobs.claim(engine, "w1", lease_seconds=30, max_attempts=2)
    assert first is not None and first.attempt == 1
    assert jobs.claim(engine, "w2", 30, 2) is None  # leased: nobody else gets it
    assert jobs.finish(engine, first, {"class": "A"})
    assert not jobs.finish(engine, first, {"class": "G"})  # a second result is refused
    assert jobs.get(engine, "a" * 32, uid)["result"] == {"class": "A"}


def test_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(db_url):
    engine = engine_for(db_url)
    uid = _owner(engine)
    jobs.enqueue(engine, "b" * 32, uid, {}, None)
    dead = jobs.claim(engine, "dead", lease_seconds=0.2, max_attempts=3)
    time.sleep(0.3)
    alive = jobs.claim(engine, "alive", lease_seconds=30, max_attempts=3)
    assert alive is not None and alive.attempt == 2
    assert not jobs.renew(engine, dead, 30) and not jobs.finish(engine, dead, {"class": "O"})
    assert jobs.finish(engine, alive, {"class": "G"})
    assert jobs.get(engine, "b" * 32, uid)["result"] == {"class": "G"}


def test_a_job_whose_workers_keep_dying_fails_with_a_reason(db_url):
    engine = engine_for(db_url)
    uid = _owner(engine)
    jobs.enqueue(engine, "c" * 32, uid, {}, None)
    for _ in range(2):
        assert jobs.claim(engine, "dies", lease_seconds=0.1, max_attempts=2) is not None
        time.sleep(0.2)
    assert jobs.claim(engine, "next", 30, 2) is None
    case = jobs.get(engine, "c" * 32, uid)
    assert case["state"] == "failed" and "stopped 2 times" in case["reason"] and case["result"] is None


def test_concurrent_workers_claim_each_job_once(db_url):
    engine = engine_for(db_url)
    uid = _owner(engine)
    ids = [f"{i:032x}" for i in range(12)]
    for i in ids:
        jobs.enqueue(engine, i, uid, {}, None)
    got, lock = [], threading.Lock()

    def work(name):
        while (c := jobs.claim(engine, name, 30, 2)) is not None:
            assert jobs.finish(engine, c, {"by": name})
            with lock:
                got.append(c.case_id)

    threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == ids


def test_audit_log_is_append_only(db_url):
    engine = engine_for(db_url)
    audit.record(engine, "login", "ok", username="alice")
    for stmt in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text(stmt))
    assert [e["action"] for e in audit.entries(engine)] == ["login"]


# ---------------------------------------------------------------- a real worker, killed mid-job
def _stage_case(data: Path, engine, case_id: str, files: dict[str, Path]) -> None:
    folder = data / "cases" / case_id / "input"
    folder.mkdir(parents=True)
    for seq, p in files.items():
        shutil.copy(p, folder / f"{seq}.nii.gz")
    jobs.enqueue(engine, case_id, _owner(engine), {s: p.name for s, p in files.items()}, None)


def _worker(data: Path, db_url: str, server: str, lease: float) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radpath.web.cli",
            "web-worker",
            "--data",
            str(data),
            "--database-url",
            db_url,
            "--server",
            server,
            "--lease-seconds",
            str(lease),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _state(engine, case_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(cases).where(cases.c.id == case_id)).mappings().first()


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_worker_mid_job_then_restart_gives_exactly_one_result(db_url, tmp_path, small_case, model_server):
    data = tmp_path / "data"
    engine = engine_for(db_url)
    case_id = "d" * 32
    _stage_case(data, engine, case_id, small_case)
    # the first worker talks to a port where nothing listens: it retries with backoff, mid-job
    doomed = _worker(data, db_url, "127.0.0.1:9", lease=2.0)
    try:
        _wait(lambda: _state(engine, case_id)["state"] == "running", 60, "the first worker to claim the job")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
    finally:
        doomed.kill()
    row = _state(engine, case_id)
    assert row["state"] == "running" and row["attempts"] == 1 and row["result"] is None
    survivor = _worker(data, db_url, model_server, lease=2.0)
    try:
        row = _wait(
            lambda: (r := _state(engine, case_id))["state"] in ("succeeded", "failed") and r,
            90,
            "the restarted worker to finish the job",
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(20)
    assert row["state"] == "succeeded", row["reason"]
    assert row["attempts"] == 2
    result = json.loads(row["result"])
    assert result["class"] in "AOG" and result["artefacts"] == "result-2"
    assert sorted(p.name for p in (data / "cases" / case_id).iterdir()) == ["input", "result-2"]
    records = [e for e in audit.entries(engine) if e["action"] == "classify" and e["case_id"] == case_id]
    assert [r["outcome"] for r in records] == ["succeeded"]
