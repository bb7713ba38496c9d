"""The REST front end under hostile load (issue 19, items 14 and 15), with real sockets on loopback
only: connections that never finish their headers are timed out and capped per client address, so
other clients are still served; concurrent large bodies are parsed within a byte budget, so the
server's memory stays bounded (and is handed back afterwards)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import radpath.serving.rest as rest
from radpath.serving.local_server import Server
from tests.serving.conftest import start_server

ATTACKER = "127.0.0.2"
"""Another loopback address (all of 127/8 is this machine), so the per-client cap can tell the
attacker from the client under test."""
PREDICT = b"POST /v1/models/glioma:predict HTTP/1.1\r\nHost: x\r\n"


def _start(model_base, **limits) -> Server:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in limits.items():
            mp.setattr(rest, name, value)
        return start_server(model_base)


def _status(port: int, timeout: float = 10) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/glioma", timeout=timeout) as r:
        return r.status


def _attack_socket(port: int) -> socket.socket:
    s = socket.socket()
    s.bind((ATTACKER, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def test_slow_headers_are_timed_out_and_capped_per_client(model_base, monkeypatch):
    """Before: 1000 connections that never finished their headers were held for minutes and every
    other REST client got 503 (uvicorn's connection limit). Here 300 such connections (a bounded
    count) from one address: beyond the per-client cap they are refused at once (429), the rest
    get 408 within the header timeout, and another client is served throughout."""
    monkeypatch.setattr(rest, "HEADER_TIMEOUT_S", 1.5)
    monkeypatch.setattr(rest, "MAX_CONNECTIONS_PER_CLIENT", 32)
    server = _start(model_base)
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(300):
            s = _attack_socket(server.rest_port)
            if i % 2:
                s.sendall(PREDICT)  # a request line and one header, never the blank line
            socks.append(s)
        time.sleep(0.3)
        assert _status(server.rest_port, timeout=5) == 200  # another client is served meanwhile
        answers = []
        for s in socks:
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except (TimeoutError, ConnectionResetError):
                pass
            answers.append(data.split(b" ", 2)[1] if data else b"closed")
        elapsed = time.monotonic() - t0
        assert answers.count(b"429") == 300 - 32, answers.count(b"429")
        held = [a for a in answers if a != b"429"]
        assert set(held) <= {b"408", b"closed"} and b"408" in held, set(held)
        assert elapsed < 1.5 + 5, elapsed  # every held connection was closed near the timeout
        assert not rest_connections(server)  # nothing left open, the per-client count back at 0
    finally:
        for s in socks:
            s.close()
        server.stop()


def rest_connections(server) -> dict:
    proto = server._rest._uvicorn.config.http_protocol_class
    deadline = time.monotonic() + 5
    while proto.per_client and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(proto.per_client)


def test_a_client_sending_its_headers_byte_by_byte_is_cut_off(model_base, monkeypatch):
    """The header deadline runs from the connection's start: trickling bytes does not extend it."""
    monkeypatch.setattr(rest, "HEADER_TIMEOUT_S", 1.0)
    server = _start(model_base)
    try:
        s = _attack_socket(server.rest_port)
        t0, data = time.monotonic(), b""
        for byte in PREDICT * 20:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.02)
            s.setblocking(False)
            try:
                data += s.recv(65536)
            except BlockingIOError:
                pass
            s.setblocking(True)
            if data:
                break
        assert data.startswith(b"HTTP/1.1 408 ") and b"did not arrive" in data, data[:200]
        assert time.monotonic() - t0 < 3
        s.close()
    finally:
        server.stop()


# ---------------------------------------------------------------- memory
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class PeakRss:
    """Samples this process's RSS every 5 ms (the server runs in it)."""

    def __enter__(self):
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.base


def _post(port: int, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/glioma:predict", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        return r.status


def _burst(port: int, body: bytes, n: int) -> tuple[list[int], float]:
    with PeakRss() as rss, ThreadPoolExecutor(n) as pool:
        codes = list(pool.map(lambda _: _post(port, body), range(n)))
    return codes, rss.growth


@pytest.mark.parametrize("concurrent", [6])
def test_concurrent_large_bodies_stay_within_the_parse_budget(model_base, concurrent):
    """Six ~4.3 MB bodies at once (1 row each, full-precision floats: what a client's json.dumps
    sends). Each costs ~20 MB while parsed; with a budget of one body at a time the server's RSS
    grows by about one parse, not six. The same burst against a budget that admits all six at
    once shows the difference the budget makes (measured in the same process, same bodies)."""
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 8)).astype(np.float32)
    body = json.dumps({"instances": x.astype(np.float64).tolist()}).encode()
    del x
    size_mb = len(body) / 2**20
    unbounded = _start(model_base, PARSE_BUDGET_BYTES=64 * len(body))
    bounded = _start(model_base, PARSE_BUDGET_BYTES=int(len(body) * 1.5))
    try:
        for s in (unbounded, bounded):  # warm both (first-call allocations are not parsing)
            assert _post(s.rest_port, body) == 200
        open_codes, open_growth = _burst(unbounded.rest_port, body, concurrent)
        codes, growth = _burst(bounded.rest_port, body, concurrent)
    finally:
        bounded.stop()
        unbounded.stop()
    print(
        f"\n{concurrent} concurrent {size_mb:.1f} MB bodies: RSS growth {growth:.0f} MB with a one-body budget, "
        f"{open_growth:.0f} MB without"
    )
    assert codes == open_codes == [200] * concurrent
    assert growth < 8 * size_mb, growth  # about one parse (~5x the body), far from six
    assert growth < open_growth / 2, (growth, open_growth)


def test_byte_budget_is_first_come_first_served():
    """A large body waiting at the head is not overtaken by small ones (it would starve)."""
    import asyncio

    async def scenario():
        budget = rest.ByteBudget(100)
        order = []
        assert await budget.acquire(80) == 80

        async def take(name, n):
            got = await budget.acquire(n)
            order.append(name)
            return got

        big = asyncio.create_task(take("big", 90))
        await asyncio.sleep(0)
        small = asyncio.create_task(take("small", 10))
        await asyncio.sleep(0.01)
        assert order == [] and budget.used == 80  # the small one fits but waits its turn
        budget.release(80)
        await asyncio.sleep(0.01)
        assert order == ["big", "small"] and budget.used == 100
        budget.release(await big)
        budget.release(await small)
        assert budget.used == 0
        # a waiter that gives up leaves the queue and lets the next one in
        held = await budget.acquire(100)
        quitter = asyncio.create_task(budget.acquire(50))
        await asyncio.sleep(0)
        quitter.cancel()
        budget.release(held)
        assert await budget.acquire(100) == 100

    asyncio.run(scenario())


# ---------------------------------------------------------------- messages
@pytest.mark.parametrize(
    "body, expected",
    [
        ({"instances": np.zeros((224, 224, 8)).tolist()}, "got [224, 224, 8] (no batch axis? wrap it in a list)"),
        ({"inputs": np.zeros((224, 224, 8)).tolist()}, "got [224, 224, 8] (no batch axis? wrap it in a list)"),
        ({"inputs": [[0.0] * 4] * 3}, "got [3, 4]"),
    ],
)
def test_rest_input_of_the_wrong_rank_names_its_shape(model_base, body, expected):
    """Before: an image without its batch axis was 'a batch of 224 rows'."""
    server = _start(model_base)
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.rest_port}/v1/models/glioma:predict",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=60)
        error = json.loads(info.value.read())["error"]
        assert info.value.code == 400 and "must have shape [None, 224, 224, 8]" in error and expected in error, error
        assert "batch of" not in error
    finally:
        server.stop()
