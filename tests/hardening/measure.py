"""Run the hostile corpus in child processes and measure each case's memory and time.

Memory is the peak RSS (`ru_maxrss`) of a child process, so the test process's own caches do not
hide or inflate it:
- `api_in_child`: one child loads every case with `load_case`; a case's growth is the child's peak
  RSS after the case minus its peak after warm-up (an upper bound: the peak only grows);
- `cli_in_child`: one child runs `client.cli.main(["inspect", case])` per case, with file
  descriptor 2 redirected per case, so each case's exit code and complete stderr (logging and
  warnings included) are seen without paying the CLI's start-up (1-5 s on a loaded machine) 90 times;
- `cli_inspect`: `python -m client.cli inspect` in its own process (the real entry point, exit code
  and stderr across the process boundary); peak RSS of that process from `os.wait4`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_API_DRIVER = r"""
import json, re, resource, sys, time
from preprocess import CaseError, load_case
entries = json.load(open(sys.argv[1]))
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
load_case(entries[0]["source"])  # warm-up: imports, first allocations
base = peak_mb()
out = []
for e in entries:
    t0 = time.perf_counter()
    try:
        load_case(e["source"])
        status, msg = "ok", ""
    except CaseError as exc:
        status, msg = "CaseError", str(exc)
    except BaseException as exc:  # anything else is a bug the test reports
        status, msg = type(exc).__name__, str(exc)
    out.append({"name": e["name"], "status": status, "message": msg,
                "seconds": time.perf_counter() - t0, "growth_mb": peak_mb() - base})
json.dump(out, sys.stdout)
"""


_CLI_DRIVER = r"""
import json, os, resource, sys, tempfile, time
from client.cli import main
entries = json.load(open(sys.argv[1]))
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def run(source):
    sys.stdout.flush(), sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        try:
            try:
                rc = main(["inspect", source])
            except SystemExit as exc:
                rc = exc.code
            except BaseException:
                import traceback
                traceback.print_exc()
                rc = "exception"
            sys.stdout.flush(), sys.stderr.flush()
        finally:
            os.dup2(saved_out, 1), os.dup2(saved_err, 2)
            os.close(saved_out), os.close(saved_err)
        err.seek(0)
        return rc, err.read().decode("utf-8", "replace")
run(entries[0]["source"])  # warm-up
base = peak_mb()
results = []
for e in entries:
    t0 = time.perf_counter()
    rc, stderr = run(e["source"])
    results.append({"name": e["name"], "rc": rc, "stderr": stderr, "seconds": time.perf_counter() - t0,
                    "growth_mb": peak_mb() - base})
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def api_in_child(entries: list[dict], timeout: float = 300) -> list[dict]:
    """Load every entry in one child process; per-entry status, message, seconds, growth_mb."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(entries, f)
    try:
        r = subprocess.run([sys.executable, "-c", _API_DRIVER, f.name], capture_output=True, text=True,
                           timeout=timeout, env=_env(), cwd=REPO)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError(f"corpus child failed (rc {r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout)


def cli_in_child(entries: list[dict], timeout: float = 300) -> list[dict]:
    """`radpath inspect` on every entry inside one child: rc, stderr, seconds, growth_mb each."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(entries))
        r = subprocess.run([sys.executable, "-c", _CLI_DRIVER, str(src), str(dst)], capture_output=True,
                           text=True, timeout=timeout, env=_env(), cwd=REPO)
        if r.returncode != 0 or not dst.exists():
            raise RuntimeError(f"CLI corpus child failed (rc {r.returncode}): {r.stderr[-3000:]}")
        return json.loads(dst.read_text())


def cli_inspect(source: str, timeout: float = 60) -> dict:
    """`radpath inspect SOURCE` in its own process: rc, stdout, stderr, seconds, peak_mb."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "client.cli", "inspect", source], stdout=out, stderr=err,
                             env=_env(), cwd=REPO)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen so it does not wait
        out.seek(0), err.seek(0)
        return {"rc": p.returncode, "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace"), "seconds": seconds,
                "peak_mb": usage.ru_maxrss / 1024}


def cli_all(sources: list[str], workers: int = 2) -> list[dict]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(cli_inspect, sources))
