"""Run the hostile corpus in child processes and measure each case's memory and time.

Memory is measured in child processes from Linux's own peak-RSS counter (VmHWM in
/proc/self/status, reset before each case through /proc/self/clear_refs), so the test process's
caches neither hide nor inflate it:
- `api_in_child`: one child loads every case with `load_case`; a case's growth is the peak RSS
  during the case minus the RSS before it;
- `cli_in_child`: one child runs `radpath.cli.main(["inspect", case])` per case, with file
  descriptor 2 redirected per case, so each case's exit code and complete stderr (logging and
  warnings included) are seen without paying the CLI's start-up (1-5 s on a loaded machine) 90 times;
- `cli_inspect`: `radpath.cli.main` in its own process (exit code and stderr across the process
  boundary); the process's own peak RSS.
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

_MEASURE = r"""
import time

def _status_mb(key):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(key)).split()[1]) / 1024
def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass
def measure(fn):
    # (result, seconds, growth_mb): growth is the peak RSS during fn minus the RSS before it
    before = _status_mb("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, _status_mb("VmHWM") - before
"""
"""Shared by both drivers: time and peak-RSS growth of one call, measured inside the child."""

_API_DRIVER = (
    _MEASURE
    + r"""
import json, re, sys
from radpath.preprocess import CaseError, load_case
entries = json.load(open(sys.argv[1]))
def load(source):
    try:
        load_case(source)
        return "ok", ""
    except CaseError as exc:
        return "CaseError", str(exc)
    except BaseException as exc:  # anything else is a bug the test reports
        return type(exc).__name__, str(exc)
load(entries[0]["source"])  # warm-up: imports, first allocations
out = []
for e in entries:
    (status, msg), seconds, growth = measure(lambda: load(e["source"]))
    out.append({"name": e["name"], "status": status, "message": msg, "seconds": seconds, "growth_mb": growth})
json.dump(out, sys.stdout)
"""
)


_CLI_DRIVER = (
    _MEASURE
    + r"""
import json, os, sys, tempfile
from radpath.cli import main
entries = json.load(open(sys.argv[1]))
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
results = []
for e in entries:
    (rc, stderr), seconds, growth = measure(lambda: run(e["source"]))
    results.append({"name": e["name"], "rc": rc, "stderr": stderr, "seconds": seconds, "growth_mb": growth})
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""
)

_CLI_PROCESS = r"""
import os, sys
from radpath.cli import main
try:
    rc = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as f:
        hwm = next(l for l in f if l.startswith("VmHWM")).split()[1]
    with open(os.environ["RADPATH_TEST_HWM_FILE"], "w") as f:
        f.write(hwm)
sys.exit(rc)
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
        r = subprocess.run(
            [sys.executable, "-c", _API_DRIVER, f.name],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            cwd=REPO,
        )
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
        r = subprocess.run(
            [sys.executable, "-c", _CLI_DRIVER, str(src), str(dst)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            cwd=REPO,
        )
        if r.returncode != 0 or not dst.exists():
            raise RuntimeError(f"CLI corpus child failed (rc {r.returncode}): {r.stderr[-3000:]}")
        return json.loads(dst.read_text())


def cli_inspect(source: str, timeout: float = 60) -> dict:
    """`radpath inspect SOURCE` (radpath.cli.main, as `python -m radpath` runs it) in its own
    process: rc, stdout, stderr, seconds, and peak_mb, the process's own VmHWM (`ru_maxrss` of a
    child would count the forking parent's size: Linux keeps it across exec)."""
    with tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-c", _CLI_PROCESS, "inspect", source],
            capture_output=True,
            timeout=timeout,
            env={**_env(), "RADPATH_TEST_HWM_FILE": str(hwm_file)},
            cwd=REPO,
        )
        seconds = time.perf_counter() - t0
        peak = int(hwm_file.read_text()) / 1024 if hwm_file.exists() else float("nan")
    return {
        "rc": r.returncode,
        "stdout": r.stdout.decode("utf-8", "replace"),
        "stderr": r.stderr.decode("utf-8", "replace"),
        "seconds": seconds,
        "peak_mb": peak,
    }


def cli_all(sources: list[str], workers: int = 2) -> list[dict]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(cli_inspect, sources))
