"""The site's memory under concurrent full-size uploads (issue 19, item 9).

    flock /tmp/radpath-cpu.lock python tests/bench/bench_web_memory.py [--shape 400] [--concurrent 8]
        [--root CHECKOUT]

A `radpath web` process (no workers) from the checkout `--root` (default: this one; give an older
checkout for the baseline) gets `--concurrent` uploads at once of four int16 volumes of
`--shape`^3 (the issue's case: 400^3, ~1.7 MB gzipped each, 128 MB decoded each). Reported: the
site's RSS after a warm-up upload, its peak (VmHWM) during the concurrent uploads and the growth,
the RSS after, and the uploads' wall time. Target: growth < 300 MB for 8 at once. Every upload
must be accepted (303); the checks' own processes are not the site's memory and are listed apart
(peak RSS of the largest child seen while polling).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))

from tests.web.test_websec_memory import logged_in, peak_reset, status_mb, upload, volumes  # noqa: E402
from tests.web.test_websec_shutdown import _descendants, _free_port, _wait  # noqa: E402

PASSWORD = "correct horse battery"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, default=400)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--root", type=Path, default=HERE, help="checkout whose `radpath web` to measure")
    args = ap.parse_args()
    from tests.web.conftest import multipart_body

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        files = volumes(tmp / "vol", (args.shape,) * 3)
        sizes = [p.stat().st_size / 1e6 for p in files.values()]
        print(
            f"volumes {args.shape}^3 int16: {', '.join(f'{s:.1f}' for s in sizes)} MB gzipped "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        body, ctype = multipart_body(files, csrf_token="CSRF-PLACEHOLDER")
        data = tmp / "data"
        env = {**os.environ, "PYTHONPATH": str(args.root)}
        subprocess.run(
            [sys.executable, "-m", "radpath.web.cli", "users", "add", "erin", "--password-stdin", "--data", str(data)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            cwd=args.root,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "radpath.web.cli",
                "web",
                "--port",
                str(port),
                "--workers",
                "0",
                "--data",
                str(data),
            ],
            cwd=args.root,
            env={**env, "RADPATH_WEB_MAX_QUEUED_PER_USER": "1000"},
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 120, "the site")
            lock, results = threading.Lock(), []
            clients = [logged_in(port) for _ in range(args.concurrent)]
            upload(clients[0], body, ctype, results, lock)
            before = status_mb(proc.pid, "VmRSS")
            peak_reset(proc.pid)
            children_peak = [0.0]
            done = threading.Event()

            def watch_children() -> None:
                while not done.wait(0.2):
                    for pid in _descendants(proc.pid):
                        try:
                            children_peak[0] = max(children_peak[0], status_mb(pid, "VmRSS"))
                        except (FileNotFoundError, ProcessLookupError, AssertionError):
                            pass

            watcher = threading.Thread(target=watch_children, daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=upload, args=(c, body, ctype, results, lock)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            done.set()
            peak = status_mb(proc.pid, "VmHWM")
            time.sleep(1)
            after = status_mb(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"root {args.root}")
    print(f"uploads: {results[1:]} ({args.concurrent} at once) in {wall:.1f} s")
    print(
        f"site RSS: {before:.0f} MB after warm-up, peak {peak:.0f} MB (growth {peak - before:.0f} MB), "
        f"{after:.0f} MB after"
    )
    print(f"largest child process seen: {children_peak[0]:.0f} MB RSS")
    ok = peak - before < 300 and results == [303] * (args.concurrent + 1)
    print("target (< +300 MB, all accepted):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
