"""The light client install: its size, and `radpath classify` start-to-result time vs the full venv.

    python tests/bench/bench_client_install.py [--case CASE_DIR] [--runs 7] [--keep DIR]

1. Creates a fresh venv in a temporary folder and runs `pip install '.[client]'` from this checkout
   (PyPI needed for the dependencies); prints its installed size (target <= 300 MB) next to the
   full venv's (.venv, all extras).
2. Starts the built-in server from the full venv over a tiny exported model (or `--model-base`).
3. Times `radpath classify CASE --server ... --json` as a new process, light venv vs full venv,
   alternating, and prints the medians and their ratio (target: light no slower).
4. Runs the contract tests inside the light venv (pytest installed after the size was measured):
   what a service that installs only the client can check for itself.
The case defaults to a synthetic one written by `synth` (240 x 240 x 155); pass a real case folder
(e.g. one of ../shared/real) with --case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FULL_VENV = Path(sys.executable).parent.parent


def du_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_light_venv(where: Path) -> tuple[Path, float]:
    venv = where / "light-venv"
    if (venv / "bin" / "radpath").is_file():  # --keep DIR of an earlier run: reuse its install
        return venv, float("nan")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.perf_counter()
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{ROOT}[client]"], check=True
    )
    return venv, time.perf_counter() - t0


def start_server(model_base: Path) -> tuple[subprocess.Popen, str]:
    g, r = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radpath",
            "serve",
            "--model-base",
            str(model_base),
            "--grpc-port",
            str(g),
            "--rest-port",
            str(r),
            "--backend",
            "builtin",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{r}/v1/models/glioma", timeout=2) as resp:
                if json.loads(resp.read())["model_version_status"][0]["state"] == "AVAILABLE":
                    return proc, f"127.0.0.1:{g}"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the built-in server did not come up in 300 s")


def tiny_model(where: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.serving.conftest import export_tiny

    base = where / "models"
    export_tiny(base, seed=1)
    return base


def classify_seconds(venv: Path, case: Path, target: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(venv / "bin" / "radpath"), "classify", str(case), "--server", target, "--json"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if r.returncode != 0:
        raise SystemExit(f"classify failed in {venv}: {r.stderr[-2000:]}")
    json.loads(r.stdout)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", type=Path, help="case folder (default: a synthetic 240x240x155 case)")
    p.add_argument("--model-base", type=Path, help="model base to serve (default: a tiny exported model)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument(
        "--keep",
        type=Path,
        help="work folder to keep and reuse (its light venv, its case) (default: a temporary one, deleted)",
    )
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-client-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        venv, install_s = make_light_venv(work)
        light_mb, full_mb = du_mb(venv), du_mb(FULL_VENV)
        print(
            f"light client venv: {light_mb:.0f} MB installed in {install_s:.0f} s (target <= 300 MB); "
            f"full venv {FULL_VENV}: {full_mb:.0f} MB; ratio {light_mb / full_mb:.3f}"
        )
        probe = (
            "import sys, radpath.client.grpc_client; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'jax', 'flax'}))"
        )
        print(
            "light venv: heavy modules after importing the client:",
            subprocess.run(
                [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tempfile.gettempdir()
            ).stdout.strip(),
        )
        case = args.case
        if case is None and (work / "cohort" / "Radiology").is_dir():
            case = next((work / "cohort" / "Radiology").iterdir())
        if case is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "radpath",
                    "synth",
                    str(work / "cohort"),
                    "--cases",
                    "1",
                    "--seed",
                    "3",
                    "--quiet",
                ],
                check=True,
                cwd=ROOT,
            )
            case = next((work / "cohort" / "Radiology").iterdir())
        reuse = any(p.name.isdigit() for p in (work / "models" / "glioma").glob("*"))
        model_base = args.model_base or (work / "models" if reuse else tiny_model(work))
        server, target = start_server(model_base)
        try:
            classify_seconds(venv, case, target)  # warm the file cache and the server for both
            classify_seconds(FULL_VENV, case, target)
            light, full = [], []
            for _ in range(args.runs):
                light.append(classify_seconds(venv, case, target))
                full.append(classify_seconds(FULL_VENV, case, target))
        finally:
            server.terminate()
            server.wait(timeout=30)
        ml, mf = statistics.median(light), statistics.median(full)
        print(
            f"radpath classify, process start to result, median of {args.runs}: light {ml:.3f} s "
            f"(range {min(light):.3f}-{max(light):.3f}), full {mf:.3f} s (range {min(full):.3f}-{max(full):.3f}); "
            f"light/full {ml / mf:.2f}x (target <= 1)"
        )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "pytest", "scikit-learn"],
            check=True,
        )
        r = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(ROOT / "tests" / "contract"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        print(
            "contract tests in the light venv:",
            r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:],
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
