"""Fairness between users (issue 19, item 10): one user's backlog and another user's one case.

    python tests/bench/bench_web_fairness.py [--backlog 12] [--root CHECKOUT] [--shape 96]

A `radpath web` with one worker (from the checkout `--root`; give an older checkout for the
baseline) and the tests' tiny model on the built-in server. First the light user's case alone
(upload to result), then the heavy user queues `--backlog` cases and right after, the light user
one: its upload-to-result time, and how many of the heavy user's cases finished before it. The
per-user cap is raised for the backlog (RADPATH_WEB_MAX_QUEUED_PER_USER); with the default cap of
10 the heavy user's 11th and 12th uploads are refused (429), which is reported too.
Synthetic cases of `--shape` (small, so the queue's order dominates, not the model).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))

from tests.bench.bench_web import upload, wait_result  # noqa: E402
from tests.web.test_websec_shutdown import _free_port, _wait  # noqa: E402

PASSWORD = "correct horse battery"


def _token(url: str, user: str) -> httpx.Client:
    token = httpx.post(url + "/api/token", json={"username": user, "password": PASSWORD}).json()["token"]
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=12)
    ap.add_argument("--shape", type=int, default=96)
    ap.add_argument("--root", type=Path, default=HERE)
    args = ap.parse_args()
    from radpath.serving.local_server import Server
    from radpath.serving.model_config import ModelEntry
    from tests.serving.conftest import export_tiny
    from tests.web.conftest import write_small_case

    tmp = Path(tempfile.mkdtemp(prefix="bench_fair_"))
    files = write_small_case(tmp / "cohort", shape=(args.shape, args.shape, max(32, args.shape * 2 // 3)))
    export_tiny(tmp / "models", seed=1)
    server = Server(
        [ModelEntry("glioma", tmp / "models" / "glioma", "latest", 2)],
        grpc_port=0,
        rest_port=0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 2000},
        poll_seconds=1.0,
        host="127.0.0.1",
    ).start()
    env = {**os.environ, "PYTHONPATH": str(args.root), "RADPATH_WEB_MAX_QUEUED_PER_USER": str(args.backlog + 5)}
    data = tmp / "data"
    for user in ("heavy", "light"):
        subprocess.run(
            [sys.executable, "-m", "radpath.web.cli", "users", "add", user, "--password-stdin", "--data", str(data)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            cwd=args.root,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    site = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radpath.web.cli",
            "web",
            "--port",
            str(port),
            "--workers",
            "1",
            "--data",
            str(data),
            "--server",
            f"127.0.0.1:{server.grpc_port}",
        ],
        cwd=args.root,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: httpx.get(url + "/healthz").status_code == 200, 120, "the site")
        heavy, light = _token(url, "heavy"), _token(url, "light")
        wait_result(light, upload(light, files))  # warm-up: worker imports, model loaded
        t0 = time.perf_counter()
        alone = wait_result(light, upload(light, files))
        alone_s = time.perf_counter() - t0
        backlog = [upload(heavy, files) for _ in range(args.backlog)]
        t0 = time.perf_counter()
        mine = upload(light, files)
        result = wait_result(light, mine, timeout=900)
        behind_s = time.perf_counter() - t0
        done_before = sum(
            1
            for i in backlog
            if (c := heavy.get(f"/api/cases/{i}").json())["finished_at"] and c["finished_at"] < result["finished_at"]
        )
        for i in backlog:
            wait_result(heavy, i, timeout=900)
    finally:
        site.terminate()
        site.wait(60)
        server.stop()
    print(f"root {args.root}; cases {args.shape}^3-ish, one worker")
    print(f"light user's case alone: {alone_s:.1f} s ({alone['state']})")
    print(
        f"light user's case behind the heavy user's {args.backlog}: {behind_s:.1f} s ({result['state']}); "
        f"{done_before} of the heavy user's cases finished before it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
