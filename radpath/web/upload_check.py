"""Check an upload (`uploads.check`: `preprocess.load_case`, the CLI's checks) in a short-lived process.

Decoding four volumes takes ~1 GB at full size (four 400^3 volumes as float32), and a long-lived
process rarely gives such memory back; three concurrent uploads took the site from 128 MB to 1.1 GB.
So the site never decodes a volume itself: each check runs in a fresh child forked from a
`forkserver` that has the preprocessing modules loaded (a fork costs milliseconds), under an
address-space limit and a timeout, and its memory goes back to the system when it exits. The site
keeps only the streamed files on disk and the child's verdict. At most `max_concurrent_checks` run
at once (the caller's semaphore).
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import signal
import threading

from .lifecycle import die_with_parent
from .settings import Settings
from .uploads import Staged, UploadError, check

log = logging.getLogger(__name__)

_lock = threading.Lock()
_ctx = None


def _context():
    global _ctx
    with _lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["radpath.web.uploads"])  # numpy, nibabel, preprocess: once
            _ctx = ctx
        return _ctx


def _child(staged: Staged, send, memory_bytes: int) -> None:
    die_with_parent(signal.SIGKILL)  # its parent is the forkserver, which exits with the site
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        check(staged)
        send.send(("ok", "", 200))
    except UploadError as exc:
        send.send(("refused", str(exc), exc.status))
    except MemoryError:
        send.send(("memory", "", 413))
    except Exception as exc:  # a bug in the checks: the site answers 500 and logs it
        send.send(("error", f"{type(exc).__name__}: {exc}", 500))


def check_isolated(staged: Staged, settings: Settings) -> None:
    """`uploads.check(staged)` in a child process; UploadError (4xx/503) exactly as `check` raises it.

    Blocking: call it from a thread (asyncio.to_thread)."""
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child,
        args=(staged, send, settings.check_memory_bytes),
        name="radpath-upload-check",
        daemon=True,
    )
    proc.start()
    send.close()
    try:
        if not recv.poll(settings.check_timeout_seconds):
            raise UploadError(
                f"checking the upload took longer than {settings.check_timeout_seconds:.0f} s (the site is busy); "
                "try again in a few minutes",
                503,
            )
        verdict, message, status = recv.recv()
    except EOFError:
        verdict, message, status = "died", "", 500
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
    if verdict == "ok":
        return
    if verdict == "refused":
        raise UploadError(message, status)
    if verdict == "memory":
        limit = settings.check_memory_bytes / 1024**3
        raise UploadError(
            f"the files need more than this site's {limit:.1f} GB to be checked; send smaller volumes "
            "(or ask IT to raise check_memory_bytes)",
            413,
        )
    log.error("upload check failed: %s (exit code %s)", message or "the checking process died", proc.exitcode)
    raise RuntimeError(f"the upload check did not finish ({message or f'exit code {proc.exitcode}'})")
