"""The site's memory under concurrent uploads (issue 19, item 9): a real `radpath web` process gets 8
uploads at once and its peak RSS (VmHWM, reset after a warm-up upload) may grow only a little,
because it never decodes a volume itself: checks run in short-lived child processes
(`upload_check`). Volumes of 160^3 keep the test fast; decoding just two such cases in the site,
as before, grew it by well over the limit here. tests/bench/bench_web_memory.py runs the full-size
case (four 400^3 int16 volumes)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest

from radpath.web import auth
from radpath.web.db import engine_for
from radpath.web.settings import load_settings
from tests.web.conftest import PASSWORD, csrf_of, multipart_body
from tests.web.test_websec_shutdown import _free_port, _wait

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (160, 160, 160)
CONCURRENT = 8
"""With the warm-up, 9 cases of one user: under the default cap of 10 queued per user."""
LIMIT_MB = 40
"""Peak growth allowed here. One case of this size decoded as float32 is 66 MB; the site before
this change (two checks at once, in its own process) grew by 89 MB in this test, now by ~3 MB."""


def volumes(folder: Path, shape=SHAPE) -> dict[str, Path]:
    """Four distinct int16 volumes (a bright ball in a dim box, each sequence its own contrast)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    r2 = (x - shape[0] / 2) ** 2 + (y - shape[1] / 2) ** 2 + (z - shape[2] / 2) ** 2
    out = {}
    for k, seq in enumerate(("flair", "t1", "t1ce", "t2")):
        data = np.where(r2 < (shape[0] / 3) ** 2, 400 + 100 * k, 0).astype(np.int16)
        data[::7, ::5, ::3] += np.int16(k + 1)  # texture, and no two sequences alike
        path = folder / f"case_{seq}.nii.gz"
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0])).to_bytes())
        out[seq] = path
    return out


def peak_reset(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def logged_in(port: int) -> tuple[httpx.Client, str]:
    """A client with a session, and its CSRF token. Logged in before measuring: an argon2id check
    takes 64 MB while it runs, which is the login's memory, not the upload's."""
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"accept": "text/html"}, timeout=300)
    token = csrf_of(c.get("/login").text)
    assert c.post("/login", data={"username": "erin", "password": PASSWORD, "csrf_token": token}).status_code == 303
    return c, csrf_of(c.get("/upload").text)


def upload(client: tuple[httpx.Client, str], body: bytes, ctype: str, results: list, lock: threading.Lock) -> None:
    c, csrf = client
    r = c.post("/upload", content=body.replace(b"CSRF-PLACEHOLDER", csrf.encode()), headers={"content-type": ctype})
    with lock:
        results.append(r.status_code)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_site_memory_stays_flat_under_eight_concurrent_uploads(tmp_path):
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    auth.add_user(engine_for(settings.db_url), "erin", PASSWORD)
    body, ctype = multipart_body(volumes(tmp_path / "vol"), csrf_token="CSRF-PLACEHOLDER")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "radpath.web.cli", "web", "--port", str(port), "--workers", "0", "--data", str(data)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 60, "the site")
        lock, results = threading.Lock(), []
        clients = [logged_in(port) for _ in range(CONCURRENT)]
        upload(clients[0], body, ctype, results, lock)  # warm-up: imports, the checking server, caches
        assert results == [303]
        before = status_mb(proc.pid, "VmRSS")
        peak_reset(proc.pid)
        threads = [threading.Thread(target=upload, args=(c, body, ctype, results, lock)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        growth = status_mb(proc.pid, "VmHWM") - before
    finally:
        proc.terminate()
        proc.wait(30)
    assert results == [303] * (CONCURRENT + 1), results
    print(f"site RSS {before:.0f} MB before, peak growth {growth:.1f} MB under {CONCURRENT} concurrent uploads")
    assert growth < LIMIT_MB, f"the site grew by {growth:.0f} MB (limit {LIMIT_MB} MB)"
