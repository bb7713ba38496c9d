"""SIGTERM stops a worker whatever its main thread holds (issue 19 item 13): `shutdown_signals` never takes
a lock in a signal handler. The old handler, `lambda *_: stop.set()`, hung for good when a signal came while
the Event's lock was held (a second SIGTERM of a PDEATHSIG burst, during the first handler's `stop.set()`);
a SIGKILLed site then left a worker running with PPID 1. Each check runs in a fresh interpreter (signal
handling is process-wide) with a timeout, so the old behaviour fails here instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LOCK_HELD = """
import os, signal, threading
from radpath.web.shutdown_signals import stop_on_signals

stop = threading.Event()
stop_on_signals(stop)
# What the PDEATHSIG burst caught the worker in: the Event's lock held (by `stop.set()` in the first handler
# run, or by the main thread inside `stop.wait()`) when a SIGTERM's Python-level handler runs.
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # a few bytecodes, the lock still held: the Python-level handler has run by now
print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""

BURST = """
import os, signal, threading
from radpath.web.shutdown_signals import stop_on_signals

stop, passed_on = threading.Event(), threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: None)  # another signal with a handler: not a request to stop
stop_on_signals(stop, also=passed_on.set)
os.kill(os.getpid(), signal.SIGUSR1)
print("usr1 stops" if stop.wait(0.5) else "usr1 ignored", flush=True)
for _ in range(200):
    os.kill(os.getpid(), signal.SIGINT)
    stop.wait(0)
print("stopped" if stop.wait(10) and passed_on.wait(10) else "not stopped", flush=True)
"""


def _run(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("\n")[:-1]


def test_a_signal_while_the_stop_events_lock_is_held_still_stops_the_process():
    assert _run(LOCK_HELD) == ["stopped"]


def test_a_burst_of_signals_stops_once_and_other_signals_do_not_stop():
    assert _run(BURST) == ["usr1 ignored", "stopped"]
