"""Serving and client benchmarks (issue 4), ratios measured in one run; not collected by pytest.

    python tests/bench/bench_serving.py [--model-base DIR] [--cohort DIR] [--cases 16] [--repeats 20]
                                        [--only 1,2,3,4,5,6] [--bodies 16] [--body-mb 60] [--grpc-requests 32]

1. gRPC Predict round trip through the built-in server (a separate `radpath serve` process) vs
   calling the same SavedModel in-process, batch 1 and 8 (target <= 1.2x); and the same request's
   bytes to a bare Python gRPC server that answers without reading them (the transport's floor).
2. Server-side batching: 8 concurrent clients sending batch-1 requests, with and without batching.
3. `classify-cohort` wall time vs the sum of its cases' preprocessing and inference measured one by
   one (target <= 0.7x: the stages overlap).
4. `radpath classify CASE` from process start to printed result vs preprocessing + inference of
   that case (target < 3x), and what dominates.
5. REST memory (issue 19, item 15): `--bodies` concurrent JSON bodies of about `--body-mb` MB each
   (under the 64 MB cap) to the server process; its peak RSS (VmHWM) and RSS afterwards against its
   RSS before (target: < +1 GB, and handed back).
6. gRPC memory (issue 19): `--grpc-requests` concurrent Predicts of the largest valid size, then as
   many of about 60 MB (over the row limit), each against a fresh server; its peak RSS.
Without --model-base a width-8 ResNet50 with random weights is exported (speed does not depend on
the weights); without --cohort full-size synthetic cases are generated.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_base: Path, batching: bool, rest: bool = False) -> tuple[subprocess.Popen, str]:
    g, r = _port(), _port()
    cmd = [
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
    ] + ([] if batching else ["--no-batching"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{r}/v1/models/glioma", timeout=1) as resp:
                if b"AVAILABLE" in resp.read():
                    return proc, f"127.0.0.1:{r}" if rest else f"127.0.0.1:{g}"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start")


def paired_medians(*fns, repeats: int) -> list[float]:
    """Median times of `fns`, called in turn so machine noise hits them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


ECHO_SERVER = """
import sys
from concurrent import futures
import grpc
limit = 64 * 2**20
server = grpc.server(futures.ThreadPoolExecutor(16), options=[("grpc.max_receive_message_length", limit)])
answer = bytes(100)  # about a PredictResponse of three probabilities and a threshold
handler = grpc.unary_unary_rpc_method_handler(lambda request, context: answer)
service = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {"Predict": handler})
server.add_generic_rpc_handlers((service,))
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""
"""A bare gRPC server in Python that answers any Predict with 100 bytes, reading nothing: the
round trip of the request's bytes alone, the floor under any Python gRPC server's overhead."""


def start_echo_server() -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("echo server did not start")
    return proc, f"127.0.0.1:{port}"


def _status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def rest_memory(model_base: Path, bodies: int, body_mb: float) -> None:
    """Section 5: concurrent large JSON bodies against a fresh server process."""
    import http.client

    proc, address = start_server(model_base, batching=True, rest=True)
    host, port = address.split(":")
    try:
        rows = max(1, int(body_mb * 2**20 / (224 * 224 * 4 * 19.6)))  # json.dumps of a float64: ~19.6 bytes
        x = np.random.default_rng(0).normal(size=(rows, 224, 224, 8))
        body = json.dumps({"instances": x.tolist()}).encode()
        del x
        assert len(body) < 64 * 2**20, f"{len(body)} bytes: over the server's limit, lower --body-mb"

        def post(_) -> int:
            conn = http.client.HTTPConnection(host, int(port), timeout=600)
            conn.request("POST", "/v1/models/glioma:predict", body, {"Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
            return status

        time.sleep(2)
        before = _status_mb(proc.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(bodies) as pool:
            codes = list(pool.map(post, range(bodies)))
        seconds = time.perf_counter() - t0
        time.sleep(2)
        after = _status_mb(proc.pid)
        print(
            f"   {bodies} concurrent bodies of {len(body) / 2**20:.1f} MB ({rows} rows each), answers "
            f"{sorted(set(codes))}, {seconds:.1f} s: server RSS {before['VmRSS']:.0f} MB before, "
            f"peak {after['VmHWM']:.0f} MB (+{after['VmHWM'] - before['VmRSS']:.0f} MB, target < +1024), "
            f"{after['VmRSS']:.0f} MB 2 s after"
        )
    finally:
        proc.terminate()


def grpc_memory(model_base: Path, requests: int) -> None:
    """Section 6: `requests` concurrent gRPC Predicts of the largest valid size (16 rows), then as
    many over the row limit (about 60 MB each, under the client's 64 MB cap), each burst against a
    fresh server process: its peak RSS (VmHWM, reset before the burst) against its RSS before."""
    import grpc

    from radpath.client.grpc_client import predict_request_bytes
    from radpath.contract.model_io import IMAGE_SHAPE
    from radpath.contract.signature import GRPC_MAX_MESSAGE_BYTES
    from radpath.contract.tfs_api import serving_apis_pb2 as apis

    req = apis.PredictRequest()
    req.model_spec.name = "glioma"
    rows_60mb = int(60 * 2**20 // (np.prod(IMAGE_SHAPE) * 4))
    bursts = [
        ("16-row requests (the largest valid)", np.random.default_rng(0).normal(size=(16, *IMAGE_SHAPE))),
        (f"{rows_60mb}-row requests (over the row limit)", np.zeros((rows_60mb, *IMAGE_SHAPE))),
    ]
    options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES)]
    for name, x in bursts:
        raw = predict_request_bytes(req, "image", x.astype(np.float32))
        proc, target = start_server(model_base, batching=True)
        try:
            time.sleep(1)
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # peak RSS := RSS now (not the warm-up's)
            before = _status_mb(proc.pid)

            def call(_, raw=raw, target=target) -> str:
                with grpc.insecure_channel(target, options=options) as channel:
                    try:
                        channel.unary_unary("/tensorflow.serving.PredictionService/Predict")(raw, timeout=300)
                        return "OK"
                    except grpc.RpcError as exc:
                        return exc.code().name

            t0 = time.perf_counter()
            with ThreadPoolExecutor(requests) as pool:
                codes = sorted(set(pool.map(call, range(requests))))
            after = _status_mb(proc.pid)
            print(
                f"   {requests} concurrent {name}, {len(raw) / 2**20:.1f} MB each: answers {codes} in "
                f"{time.perf_counter() - t0:.1f} s; server RSS {before['VmRSS']:.0f} MB before, peak "
                f"{after['VmHWM']:.0f} MB (+{after['VmHWM'] - before['VmRSS']:.0f} MB)"
            )
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-base", type=Path)
    ap.add_argument("--cohort", type=Path)
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--only", default="1,2,3,4,5,6", help="sections to run, e.g. 1,5 (2, 3 and 4 run together)")
    ap.add_argument("--grpc-requests", type=int, default=32, help="section 6: concurrent gRPC requests")
    ap.add_argument("--bodies", type=int, default=16, help="section 5: concurrent bodies")
    ap.add_argument("--body-mb", type=float, default=60.0, help="section 5: size of each body")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")}
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))

    model_base = args.model_base
    if model_base is None:
        from radpath.train.config import TrainConfig
        from radpath.train.export import export_run
        from radpath.train.loop import init_variables
        from radpath.train.run import save_model

        config = TrainConfig(width=8)
        save_model(tmp / "run" / "model", init_variables(config), config)
        model_base = tmp / "models"
        export_run(tmp / "run", model_base)
    if 5 in only:
        print("5. REST memory")
        rest_memory(model_base, args.bodies, args.body_mb)
    if 6 in only:
        print("6. gRPC memory")
        grpc_memory(model_base, args.grpc_requests)
    if not only & {1, 2, 3, 4}:
        return
    cohort = args.cohort
    if cohort is None and only & {3, 4}:
        from radpath.synth.cohort import write_synthetic_cohort

        cohort = tmp / "cohort"
        write_synthetic_cohort(cohort, cases=args.cases, seed=5, workers=2, progress=False)

    import tensorflow as tf

    from radpath.client.grpc_client import GlioClient, predict_request_bytes
    from radpath.contract.model_io import IMAGE_SHAPE
    from radpath.contract.signature import IMAGE_INPUT, SIGNATURE_NAME
    from radpath.preprocess import find_tumor, load_case, model_input

    version_dir = max((model_base / "glioma").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    proc, target = start_server(model_base, batching=True)
    echo_proc, echo_target = start_echo_server()
    try:
        client = GlioClient(target)
        print("1. serving overhead (medians of", args.repeats, "alternating calls)")
        echo = GlioClient(echo_target)._channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        for b in (1, 8) if 1 in only else ():
            x = np.random.default_rng(b).normal(size=(b, *IMAGE_SHAPE)).astype(np.float32)
            raw = predict_request_bytes(client._request(SIGNATURE_NAME, x, None)[0], IMAGE_INPUT, x)
            local, remote, floor = paired_medians(
                lambda x=x: fn(image=tf.constant(x))["probabilities"].numpy(),
                lambda x=x: client.predict(x),
                lambda raw=raw: echo(raw, timeout=30),
                repeats=args.repeats,
            )
            print(
                f"   batch {b}: in-process {local * 1000:.1f} ms, gRPC round trip {remote * 1000:.1f} ms, "
                f"ratio {remote / local:.2f} (target <= 1.2); the same request's bytes to a bare Python gRPC "
                f"server that reads nothing: {floor * 1000:.2f} ms, so the best ratio any Python gRPC server "
                f"could reach here is {(local + floor) / local:.2f}"
            )

        if not only & {2, 3, 4}:
            return
        print("2. server-side batching, 8 concurrent clients x 12 batch-1 requests")
        x1 = np.random.default_rng(0).normal(size=(1, 224, 224, 8)).astype(np.float32)

        def load(t: str) -> float:
            c = GlioClient(t)
            c.predict(x1)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: [c.predict(x1) for _ in range(12)], range(8)))
            return 96 / (time.perf_counter() - t0)

        with_b = load(target)
        proc2, target2 = start_server(model_base, batching=False)
        try:
            without_b = load(target2)
        finally:
            proc2.terminate()
        print(f"   with batching {with_b:.1f} req/s, without {without_b:.1f} req/s, ratio {with_b / without_b:.2f}")

        print("3. cohort throughput")
        cases = sorted((cohort / "Radiology").iterdir())
        pre, inf = [], []
        for d in cases:
            t = time.perf_counter()
            case = load_case(d)
            xi = model_input(case, find_tumor(case).index)[None]
            pre.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.predict(xi)
            inf.append(time.perf_counter() - t)
        from radpath.client.cohort_batch import classify_cohort

        s = classify_cohort(cohort, tmp / "pred.csv", target, workers=2, progress=False)
        serial = sum(pre) + sum(inf)
        print(
            f"   {len(cases)} cases: preprocessing {sum(pre):.2f} s + inference {sum(inf):.2f} s = {serial:.2f} s "
            f"one by one; classify-cohort (2 workers) {s.seconds:.2f} s, ratio {s.seconds / serial:.2f} (target <= 0.7)"
        )

        print("4. CLI, one case, process start to printed result")
        d = cases[0]
        clis, imps = [], []
        for _ in range(5):  # medians of 5: single process starts are noisy here
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "radpath", "classify", str(d), "--server", target, "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
            clis.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import radpath.client.grpc_client"], check=True)
            imps.append(time.perf_counter() - t)
        cli, imports = statistics.median(clis), statistics.median(imps)
        r = json.loads(out.stdout)
        work = pre[0] + inf[0]
        print(
            f"   CLI {cli:.2f} s (median of 5) vs preprocessing {pre[0]:.2f} s "
            f"+ inference {inf[0]:.3f} s = {work:.2f} s, "
            f"ratio {cli / work:.2f} (target < 3); interpreter start + imports alone {imports:.2f} s; "
            f"CLI's own timings {r['seconds']}"
        )
    finally:
        proc.terminate()
        echo_proc.terminate()


if __name__ == "__main__":
    main()
