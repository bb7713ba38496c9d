"""Web app benchmark: submit-to-result time vs `radpath classify`, and the site's memory under load.

    python tests/bench/bench_web.py [--case CASE_DIR] [--model-base BASE] [--repeats 3]

1. The same full-size case (a synthetic 240x240x155 one unless --case is given) through
   `radpath classify` (process start to result) and through the site (upload of the four files to
   the JSON API, the worker's classification, and the result page's HTML): medians, and the ratio
   (target <= 1.5x).
2. The site's RSS (the `radpath web` process alone; the worker runs as `radpath web-worker`) while 8
   uploads of the full-size case arrive at once: peak growth over the warmed-up baseline
   (target < 300 MB).
The model is the tiny exported ResNet of the tests unless --model-base names a model store.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PASSWORD = "benchmark password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def full_size_case(tmp: Path) -> Path:
    from radpath.synth.cohort import plan_cohort, write_case

    plan = plan_cohort(3, seed=11)[0]
    (tmp / "Segmentation").mkdir(parents=True, exist_ok=True)
    write_case(tmp, plan, 11, (240, 240, 155))
    return tmp / "Radiology" / plan.case_id


def case_files(case_dir: Path) -> dict[str, Path]:
    out = {}
    for seq in ("flair", "t1", "t1ce", "t2"):
        out[seq] = next(p for p in case_dir.iterdir() if p.name.endswith((f"_{seq}.nii.gz", f"_{seq}.nii")))
    return out


def upload(client: httpx.Client, files: dict[str, Path]) -> str:
    parts = {seq: (p.name, p.open("rb"), "application/octet-stream") for seq, p in files.items()}
    try:
        r = client.post("/api/cases", files=parts, timeout=300)
    finally:
        for _, fh, _ in parts.values():
            fh.close()
    r.raise_for_status()
    return r.json()["id"]


def wait_result(client: httpx.Client, case_id: str, timeout: float = 300) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        j = client.get(f"/api/cases/{case_id}").json()
        if j["state"] in ("succeeded", "failed"):
            return j
        time.sleep(0.02)
    raise TimeoutError(case_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, help="a full-size case folder (default: a synthetic one)")
    ap.add_argument("--model-base", type=Path, help="model store (default: the tests' tiny exported model)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_web_"))
    case_dir = args.case or full_size_case(tmp / "cohort")
    files = case_files(case_dir)
    print(f"case {case_dir.name}: {sum(p.stat().st_size for p in files.values()) / 1e6:.1f} MB in 4 files")

    from radpath.serving.local_server import Server
    from radpath.serving.model_config import ModelEntry

    base = args.model_base
    if base is None:
        from tests.serving.conftest import export_tiny

        base = tmp / "models"
        export_tiny(base, seed=1)
    server = Server(
        [ModelEntry("glioma", base / "glioma", "latest", 2)],
        grpc_port=0,
        rest_port=0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 2000},
        poll_seconds=1.0,
        host="127.0.0.1",
    ).start()
    target = f"127.0.0.1:{server.grpc_port}"
    radpath = [sys.executable, "-m", "radpath"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # 1. radpath classify, process start to result
    cli_times = []
    for _ in range(args.repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(
            radpath + ["classify", str(case_dir), "--server", target],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
        cli_times.append(time.perf_counter() - t0)
    cli = statistics.median(cli_times[1:])  # the first run warms the page cache and the server

    data = tmp / "web-data"
    subprocess.run(
        radpath + ["users", "add", "bench", "--password-stdin", "--data", str(data)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    port = free_port()
    site = subprocess.Popen(
        radpath
        + [
            "web",
            "--port",
            str(port),
            "--data",
            str(data),
            "--server",
            target,
            "--model-base",
            str(base),
            "--workers",
            "0",
        ],
        env=env,
        cwd=ROOT,
    )
    worker = subprocess.Popen(
        radpath + ["web-worker", "--data", str(data), "--server", target, "--model-base", str(base)], env=env, cwd=ROOT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = httpx.post(url + "/api/token", json={"username": "bench", "password": PASSWORD}).json()["token"]
        client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=300)

        # 2. submit -> result page
        web_times = []
        for i in range(args.repeats + 1):
            t0 = time.perf_counter()
            case_id = upload(client, files)
            result = wait_result(client, case_id)
            page = client.get(f"/cases/{case_id}", headers={"accept": "text/html"})
            web_times.append(time.perf_counter() - t0)
            assert result["state"] == "succeeded" and 'data-testid="predicted-class"' in page.text, result
            if i == 0:
                print(f"worker's own timings: {result['result']['seconds']}")
        web = statistics.median(web_times[1:])
        print(f"radpath classify (process start to result): median {cli:.2f} s  {[round(t, 2) for t in cli_times[1:]]}")
        print(
            f"web submit -> result page:                   median {web:.2f} s  {[round(t, 2) for t in web_times[1:]]}"
        )
        print(f"ratio web / classify: {web / cli:.2f}x (target <= 1.5x)")

        # 3. RSS of the site during N concurrent uploads
        baseline = rss_mb(site.pid)
        peak, stop = [baseline], threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(rss_mb(site.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        ids: list[str] = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda: ids.append(upload(client, files))) for _ in range(args.concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        upload_s = time.perf_counter() - t0
        stop.set()
        sampler.join()
        print(
            f"{args.concurrent} concurrent full-size uploads accepted in {upload_s:.1f} s; site RSS baseline "
            f"{baseline:.0f} MB, peak {max(peak):.0f} MB: growth {max(peak) - baseline:.0f} MB (target < 300 MB)"
        )
        t0 = time.perf_counter()
        states = [wait_result(client, i, timeout=900)["state"] for i in ids]
        print(f"... all {len(ids)} classified by one worker in {time.perf_counter() - t0:.1f} s more: {set(states)}")
    finally:
        site.terminate()
        worker.terminate()
        site.wait(20)
        worker.wait(20)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
