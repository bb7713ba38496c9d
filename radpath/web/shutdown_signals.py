"""SIGTERM/SIGINT set a `threading.Event` that tells a worker process to stop, without a lock in a signal handler.

The obvious `signal.signal(SIGTERM, lambda *_: stop.set())` can hang the process for good. Python runs a
handler in the main thread between two bytecodes, wherever that thread is, also inside another run of the same
handler. `Event.set` takes the Event's lock, which is not re-entrant. When a second SIGTERM arrives while the
first handler is inside `stop.set()` (or while the main thread is inside `stop.wait()` with that lock held), the
new handler run waits for a lock its own thread holds: forever, and the worker never stops. Bursts of SIGTERM are
real: a worker asks for SIGTERM when its site dies (PR_SET_PDEATHSIG), and the kernel sends it again each time a
thread of the dying site that was the worker's parent exits. A SIGKILLed site left such a worker running with
PPID 1, its stack five handler runs deep, the outer one holding the lock and four waiting for it.

So the C-level handler only writes the signal's number to a pipe (`signal.set_wakeup_fd`, async-signal-safe,
done even while the main thread is stuck), the Python-level handler does nothing, and a daemon thread reads the
pipe and sets the Event: no signal handler ever takes a lock.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _noted_elsewhere(signum: int, frame: object) -> None:
    """The Python-level handler: nothing to do here (the wake-up pipe's reader acts); it must exist so that
    the C-level handler catches the signal instead of the default action ending the process."""


def stop_on_signals(
    stop: threading.Event,
    also: Callable[[], None] | None = None,
    signals: Iterable[signal.Signals] = STOP_SIGNALS,
) -> None:
    """From now on each of `signals` sets `stop`, then calls `also` (e.g. pass the signal on to child
    processes), in a daemon thread. Call it from the main thread (Python's rule for signal handlers); it
    takes over the process's wake-up fd, so not in a process with an asyncio loop handling signals."""
    wanted = {int(s) for s in signals}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # a full pipe drops the byte instead of blocking the C handler
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in wanted:
        signal.signal(sig, _noted_elsewhere)
    watcher = threading.Thread(
        target=_watch, args=(read_fd, wanted, stop, also), name="radpath-stop-signals", daemon=True
    )
    watcher.start()


def _watch(read_fd: int, wanted: set[int], stop: threading.Event, also: Callable[[], None] | None) -> None:
    """Read signal numbers from the wake-up pipe for as long as the process lives."""
    while data := os.read(read_fd, 512):
        if wanted.intersection(data):
            stop.set()
            if also is not None:
                also()
