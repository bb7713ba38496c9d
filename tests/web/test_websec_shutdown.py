"""`radpath web` as a real process tree (issue 19, items 8 and 13): it listens on 127.0.0.1 unless
told otherwise, and SIGTERM stops the site and every process it started (workers, upload checks)
within the grace period, the worker's unfinished case put back in the queue; after SIGKILL of the
site its workers still exit on their own. No process is left with PPID 1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from radpath.web import auth, jobs
from radpath.web.db import engine_for
from radpath.web.settings import load_settings
from tests.web.conftest import PASSWORD, csrf_of, multipart_body

ROOT = Path(__file__).resolve().parents[2]
GRACE = 8.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every process below `root`."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _proc_stat(int(entry.name))):
            children.setdefault(st[1], []).append(int(entry.name))
            starts[int(entry.name)] = st[2]
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def _still_running(procs: dict[int, int]) -> list[tuple[int, str, int]]:
    """The processes of `procs` (same pid, same start time) that are still alive: (pid, state, ppid)."""
    alive = []
    for pid, start in procs.items():
        st = _proc_stat(pid)
        if st is not None and st[2] == start and st[0] != "Z":
            alive.append((pid, st[0], st[1]))
    return alive


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                out.add(addr)
    return out


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if value := predicate():
                return value
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def site(tmp_path, small_case):
    """A `radpath web` process with two workers and no model server (127.0.0.1:9), one case queued
    and one user; yields (process, port, engine, owner id, case id)."""
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    engine = engine_for(settings.db_url)
    owner = auth.add_user(engine, "dora", PASSWORD)
    case_id = "f" * 32
    folder = settings.cases_dir() / case_id / "input"
    folder.mkdir(parents=True)
    for seq, path in small_case.items():
        shutil.copy(path, folder / f"{seq}.nii.gz")
    jobs.enqueue(engine, case_id, owner, {s: p.name for s, p in small_case.items()}, None)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "radpath.web.cli", "web", "--port", str(port), "--workers", "2", "--data", str(data)]
        + ["--server", "127.0.0.1:9", "--shutdown-grace-seconds", str(GRACE)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 60, "the site to start")
        yield proc, port, engine, owner, case_id
    finally:
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait(10)


def _upload(port: int, files) -> int:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"accept": "text/html"}) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": "dora", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.text[-300:]
        body, ctype = multipart_body(files, csrf_token=csrf_of(c.get("/upload").text))
        return c.post("/upload", content=body, headers={"content-type": ctype}).status_code


def test_sigterm_stops_the_site_and_all_its_processes_and_releases_the_case(site, small_case):
    proc, port, engine, owner, case_id = site
    assert _listening(port) == {"0100007F"}, _listening(port)  # 127.0.0.1 only, by default
    _wait(lambda: jobs.get(engine, case_id, owner)["note"], 60, "a worker to hold the case, waiting for the server")
    assert _upload(port, small_case) == 303  # an upload check ran in a child process too
    tree = _descendants(proc.pid)
    assert len(tree) >= 2, tree
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(GRACE + 10)
    took = time.monotonic() - t0
    assert rc == 0, proc.stderr.read().decode()[-2000:]
    assert took < GRACE + 2, took
    time.sleep(0.5)
    assert _still_running(tree) == [], f"left running after SIGTERM: {_still_running(tree)}"
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == "queued" and case["attempts"] == 0 and case["lease_owner"] is None, case


def test_workers_exit_by_themselves_when_the_site_is_killed(site):
    proc, port, engine, owner, case_id = site
    _wait(lambda: jobs.get(engine, case_id, owner)["note"], 60, "a worker to hold the case")
    tree = _descendants(proc.pid)
    proc.kill()
    proc.wait(10)
    _wait(lambda: not _still_running(tree), GRACE + 5, f"the orphans {_still_running(tree)} to exit")
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == "queued" and case["attempts"] == 0, case  # its worker still released it
