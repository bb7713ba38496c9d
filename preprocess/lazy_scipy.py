"""`scipy.ndimage`, imported on first use, optionally ahead of time in a background thread.

Importing scipy.ndimage costs about 0.3 s (it pulls in scipy's array-API layer), as much as
preprocessing a whole case. A one-shot command (`radpath classify CASE`) starts the import in a
thread (`prefetch()`) while the main thread decompresses the NIfTI files (zlib releases the GIL),
so the two overlap instead of adding up.
"""
from __future__ import annotations

import threading

_thread: threading.Thread | None = None


def prefetch() -> None:
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=lambda: __import__("scipy.ndimage"), name="import-scipy", daemon=True)
        _thread.start()


def ndimage():
    """The scipy.ndimage module (waits for a prefetch in progress)."""
    if _thread is not None:
        _thread.join()
    from scipy import ndimage as module
    return module
