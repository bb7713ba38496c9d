"""Child processes of the site (classification workers, upload checks) live and die with it.

SIGTERM (what `kill`, systemd and Kubernetes send) must stop the whole tree within the grace
period. uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the default
handler, which ended the process before any clean-up ran: the workers were left running with PPID 1.
Here the site hands its workers SIGTERM as soon as it gets one (in parallel with its own shutdown),
waits for them up to the grace period and kills what is left; and every child also asks the kernel
for a signal when its parent exits (PR_SET_PDEATHSIG), so even a SIGKILLed site leaves no orphans.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import time

log = logging.getLogger(__name__)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send `sig` to this process when its parent exits, however the parent
    ends (even SIGKILL). Elsewhere a no-op (the workers also watch their parent's pid)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(settings, parent_pid: int) -> None:
    """Entry of a worker process started by the site."""
    die_with_parent(signal.SIGTERM)
    os.umask(0o077)  # results are patient data
    if os.getppid() != parent_pid:  # the site died before we could ask to follow it
        return
    from .worker import run_worker

    run_worker(settings, parent_pid=parent_pid)


def start_workers(settings, n: int) -> list:
    """n worker processes (spawned: no inherited event loop or database connections)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(settings, os.getpid()), name=f"radpath-web-worker-{i}", daemon=True)
        for i in range(n)
    ]
    for p in procs:
        p.start()
    return procs


def signal_workers(procs: list) -> None:
    """SIGTERM to each live worker: it finishes or releases its case and exits."""
    for p in procs:
        if p.is_alive():
            p.terminate()


def stop_workers(procs: list, grace_seconds: float) -> None:
    """SIGTERM, then wait up to `grace_seconds` in all, then SIGKILL what is left (its case is
    taken over when its lease expires)."""
    signal_workers(procs)
    deadline = time.monotonic() + grace_seconds
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            log.warning("worker %s (pid %s) did not stop within %.0f s: killed", p.name, p.pid, grace_seconds)
            p.kill()
            p.join(5)
