"""TF Serving's REST API for the built-in server, on a maintained ASGI stack (Starlette + uvicorn).

    POST /v1/models/<name>[/versions/<v>]:predict      row ("instances") or columnar ("inputs") JSON
    GET  /v1/models/<name>[/versions/<v>]              version status
    GET  /v1/models/<name>[/versions/<v>]/metadata     signature
    GET  /monitoring/prometheus/metrics

Every answer is JSON (`{"error": ...}` for errors, TF Serving's shape), including the ones the HTTP
layer gives for a request it cannot parse (a bad Content-Length, a broken request line): never a
dropped connection; statuses come from the one table in `contract.errors`. NaN or inf can never
reach the wire: inputs must be finite (400) and a non-finite output is a 500 with a JSON error.

Bounded, whatever the clients do:
- time: a request line and headers must be complete within `HEADER_TIMEOUT_S` of the connection
  opening (or of the previous response), a body within `BODY_TIMEOUT_S` (408 either way); a
  stalled client costs a socket for seconds, not a thread;
- connections: at most `MAX_CONNECTIONS_PER_CLIENT` open from one address (429 beyond), so one
  client cannot fill the server's connection limit and lock the others out;
- memory: bodies are capped (`MAX_BODY_BYTES`, the gRPC message limit), and parsing JSON costs about
  4x its size in Python objects, so a body is read only once it fits in `PARSE_BUDGET_BYTES` of
  bodies in flight (first come, first served; the others wait unread, held back by TCP).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import socket
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from radpath.contract.errors import (
    InvalidArgument,
    NotFound,
    RadPathError,
    RequestTimeout,
    TooLarge,
    status_of,
)

if TYPE_CHECKING:
    from starlette.responses import Response

from . import GRPC_MAX_MESSAGE_BYTES
from .error_answer import error_answer
from .model_registry import LoadedVersion

log = logging.getLogger(__name__)

MAX_BODY_BYTES = GRPC_MAX_MESSAGE_BYTES
BODY_TIMEOUT_S = 30.0
HEADER_TIMEOUT_S = 5.0
MAX_CONNECTIONS_PER_CLIENT = 64
PARSE_BUDGET_BYTES = 2 * MAX_BODY_BYTES
"""Body bytes being read or parsed at once; each costs about 4 bytes more while parsed, so the
server's parsing memory stays near 5 x 128 MB however many large bodies arrive together."""
TRIM_AFTER_BYTES = 8 * 1024 * 1024
"""After parsing a body this large, hand freed memory back to the OS (glibc keeps it otherwise)."""

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")


class ByteBudget:
    """An asyncio semaphore counted in bytes, first come first served: a large body waiting at the
    head is not overtaken by small ones (it would starve)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._waiters: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    async def acquire(self, n: int) -> int:
        n = min(n, self.limit)
        if not self._waiters and self.used + n <= self.limit:
            self.used += n
            return n
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():  # granted just as we gave up: give it back
                self.release(n)
            else:
                with contextlib.suppress(ValueError):  # `_wake` may have dropped it already
                    self._waiters.remove((n, fut))
                self._wake()
            raise
        return n

    def release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            n, fut = self._waiters.popleft()
            if fut.done():
                continue
            self.used += n
            fut.set_result(None)


def _trim_memory() -> None:
    """Return freed heap to the OS (glibc keeps it in per-thread arenas: without this, a burst of
    large bodies leaves the server at its peak RSS for good)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _json(status: int, body) -> Response:
    from starlette.responses import Response

    try:
        data = json.dumps(body, allow_nan=False)
    except ValueError:  # a NaN slipped through: never send a body that is not JSON
        status, data = 500, json.dumps({"error": "the model produced a non-finite value"})
    return Response(data, status_code=status, media_type="application/json")


def _error(exc: BaseException) -> Response:
    status, message = error_answer(exc, "REST")
    return _json(status.http, {"error": message})


def make_app(server):
    """The Starlette app over a `serving.local_server.Server` (registry, predict, metrics)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    budget = ByteBudget(PARSE_BUDGET_BYTES)

    async def endpoint(request: Request):
        path = request.url.path
        try:
            if request.method == "GET":
                return await run_in_threadpool(_get, server, path)
            return await _post(server, request, path, run_in_threadpool, budget)
        except Exception as exc:  # answered from the one table (contract.errors)
            return _error(exc)

    async def metrics(request: Request):
        return Response(server.metrics.text(), media_type="text/plain; version=0.0.4")

    async def not_found(request: Request, exc):
        return _json(
            getattr(exc, "status_code", 404),
            {"error": f"{getattr(exc, 'detail', 'not found')}: {request.method} {request.url.path}"},
        )

    async def crashed(request: Request, exc: Exception):
        return _error(exc)

    routes = [
        Route("/monitoring/prometheus/metrics", metrics, methods=["GET"]),
        Route("/{path:path}", endpoint, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: crashed})


def _get(server, path: str):
    m = _STATUS.match(path)
    if not m:
        raise NotFound(f"unknown path {path}")
    name, version, metadata = m.group(1), m.group(2), m.group(3)
    if metadata:
        lv = server.registry.get(name, int(version) if version else None)
        signature = {
            "inputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for k, s in lv.inputs.items()},
            "outputs": lv.outputs,
        }
        return _json(
            200, {"model_spec": {"name": name, "version": str(lv.version)}, "metadata": {"signature_def": signature}}
        )
    loaded = server.registry.loaded_versions(name)
    wanted = [int(version)] if version else loaded
    if not loaded or any(v not in loaded for v in wanted):
        raise NotFound(
            f"Could not find version {version} of model {name!r}"
            if version
            else f"Could not find any versions of model {name!r}"
        )
    status = [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} for v in wanted
    ]
    return _json(200, {"model_version_status": status})


def _declared_length(request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise InvalidArgument(f"Content-Length {declared!r} is not a byte count")
    if int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"body of {declared} bytes is over the {MAX_BODY_BYTES} byte limit")
    return int(declared)


async def _read_body(request, declared: int | None) -> bytearray:
    """The body, into one buffer (no list of chunks joined into a second copy)."""
    body = bytearray()

    async def gather():
        async for chunk in request.stream():
            if len(body) + len(chunk) > MAX_BODY_BYTES:
                raise TooLarge(f"body is over the {MAX_BODY_BYTES} byte limit")
            body.extend(chunk)

    try:
        await asyncio.wait_for(gather(), BODY_TIMEOUT_S)
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s ({len(body)} of {declared or 'unknown'} bytes)"
        ) from None
    return body


def parse_body(body: bytes | bytearray) -> dict:
    """The request JSON object, or InvalidArgument saying what is wrong with it."""
    if not body.strip():
        raise InvalidArgument("empty body; expected a JSON object with 'instances' or 'inputs'")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise InvalidArgument("JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgument(f"body is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(
            f"body must be a JSON object with 'instances' or 'inputs', got a JSON {type(parsed).__name__}"
        )
    return parsed


async def _post(server, request, path: str, run_in_threadpool, budget: ByteBudget):
    m = _PREDICT.match(path)
    if not m:
        raise NotFound(f"unknown path {path}; expected /v1/models/<name>[/versions/<v>]:predict")
    t0 = time.perf_counter()
    name, version = m.group(1), int(m.group(2)) if m.group(2) else None
    code = "OK"
    try:
        declared = _declared_length(request)
        held = await budget.acquire(MAX_BODY_BYTES if declared is None else declared)
        loop = asyncio.get_running_loop()

        def give_back() -> None:  # on the event loop, once
            nonlocal held
            if held:
                budget.release(held)
                held = 0

        def parsed() -> None:  # from the worker thread
            loop.call_soon_threadsafe(give_back)

        try:
            body = await _read_body(request, declared)
            return await run_in_threadpool(_predict, server, name, version, [body], parsed)
        finally:
            give_back()
    except Exception as exc:
        code = status_of(exc).grpc
        raise
    finally:
        server.metrics.observe("rest_predict", name, code, time.perf_counter() - t0)


def _predict(server, name: str, version: int | None, holder: list, parsed_callback=None):
    """Parse, validate and run one REST predict (in a worker thread: parsing megabytes of JSON
    must not stall the event loop). The body comes in a list so that it is freed as soon as it
    is parsed, not held through inference; `parsed_callback` runs once the JSON objects are gone
    (the parse budget is given back then, not after inference)."""
    size = len(holder[0])
    parsed = parse_body(holder.pop())
    try:
        lv = server.registry.get(name, version)
        signature = parsed.get("signature_name", "")
        if not isinstance(signature, str):
            raise InvalidArgument(f"signature_name must be a string, got {type(signature).__name__}")
        lv = lv.signature(signature)
        inputs, row_format = rest_inputs(parsed, lv, server.max_rows)
    finally:
        del parsed
        if size >= TRIM_AFTER_BYTES:
            _trim_memory()
        if parsed_callback is not None:
            parsed_callback()
    outputs = server.run(lv, inputs)
    return _json(200, rest_outputs(outputs, row_format))


def _apparent_shape(value) -> list[int]:
    """The shape a nested JSON list claims, read down its first elements (no copy)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def rest_inputs(body: dict, lv: LoadedVersion, max_rows: int = 2**31) -> tuple[dict[str, np.ndarray], bool]:
    """TF Serving's REST formats: row ("instances") or columnar ("inputs"), as numpy arrays of the
    signature's dtypes. Raises InvalidArgument for anything that is not such a tensor: a rank other
    than the signature's (e.g. an image without its batch axis) names the shape it got, and a batch
    over `max_rows` is refused before converting it (converting JSON lists is the costly part)."""
    names = list(lv.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidArgument("'instances' must be a non-empty list")
        if len(names) == 1 and not isinstance(rows[0], dict):
            cols = {names[0]: rows}
        else:
            if not all(isinstance(r, dict) for r in rows):
                raise InvalidArgument(
                    f"with several inputs {names}, each instance must be an object keyed by input name"
                )
            keys = set().union(*rows)
            cols = {k: [r.get(k) for r in rows] for k in sorted(keys)}
        row_format = True
    elif "inputs" in body:
        given = body["inputs"]
        if isinstance(given, dict):
            if not given:
                raise InvalidArgument(f"'inputs' is empty; model {lv.name!r} takes {names}")
            cols = given
        else:
            cols = {names[0]: given}
        row_format = False
    else:
        raise InvalidArgument("request body needs 'instances' (row format) or 'inputs' (columnar format)")
    out = {}
    for k, v in cols.items():
        spec = lv.inputs.get(k)
        if spec is None:
            raise InvalidArgument(f"unknown input '{k}'; model {lv.name!r} takes {names}")
        want, shape = spec.shape.as_list(), _apparent_shape(v)
        if isinstance(v, list) and len(shape) != len(want):
            raise InvalidArgument(
                f"input '{k}' must have shape {want} (None = any), got {shape}"
                + (" (no batch axis? wrap it in a list)" if shape == want[1:] else "")
            )
        if isinstance(v, list) and len(v) > max_rows:
            raise InvalidArgument(
                f"input '{k}' has a batch of {len(v)} rows; this server takes 1..{max_rows} "
                "per request (split larger batches)"
            )
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                out[k] = np.asarray(v, dtype=spec.dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgument(f"input '{k}' is not a rectangular numeric array ({str(exc)[:200]})") from None
    return out, row_format


def rest_outputs(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    def plain(a: np.ndarray):
        return [x.decode() if isinstance(x, bytes) else x for x in a.tolist()] if a.dtype == object else a.tolist()

    if row_format:
        n = len(next(iter(outputs.values())))
        keys = sorted(outputs)
        return {"predictions": [{k: plain(outputs[k][i : i + 1])[0] for k in keys} for i in range(n)]}
    return {"outputs": {k: plain(v) for k, v in outputs.items()}}


# ---------------------------------------------------------------- the HTTP server
def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear error if the port is taken (SO_REUSEADDR only: two servers
    never share a port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RadPathError(
            f"REST port {port} on {host} is not available ({exc.strerror}); is another "
            "`radpath serve` running? Stop it or choose --rest-port"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _raw_json(status: int, reason: str, message: str) -> bytes:
    """A complete JSON error response, for answers outside h11's request cycle (no request yet)."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _protocol_class():
    """uvicorn's h11 protocol, plus: an unparseable request (bad Content-Length, broken request line)
    gets a JSON 400 like every other error; a request line and headers not complete within
    `HEADER_TIMEOUT_S` get a 408 and the connection is closed (uvicorn times out only idle
    keep-alive connections, so a client that sends half a header held its connection forever); at
    most `MAX_CONNECTIONS_PER_CLIENT` connections per client address (429 beyond)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        per_client: dict[str, int] = {}
        """Open connections per client address (event-loop thread only: no lock)."""

        _counted = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._address = self.client[0] if self.client else "local"
            open_now = self.per_client.get(self._address, 0)
            if open_now >= MAX_CONNECTIONS_PER_CLIENT:
                message = (
                    f"too many connections from {self._address} ({open_now} open, at most "
                    f"{MAX_CONNECTIONS_PER_CLIENT} per client); reuse connections or retry later"
                )
                transport.write(_raw_json(429, "Too Many Requests", message))
                transport.close()
                return
            self.per_client[self._address] = open_now + 1
            self._counted = True
            self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            if self._counted:
                self._counted = False
                left = self.per_client[self._address] - 1
                if left:
                    self.per_client[self._address] = left
                else:
                    del self.per_client[self._address]
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:  # part of a request came: say why it is dropped
                message = f"the request line and headers did not arrive within {HEADER_TIMEOUT_S:.0f} s"
                self.transport.write(_raw_json(408, "Request Timeout", message))
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"error": f"invalid HTTP request: {msg}"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ]
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
            self.transport.close()

    BoundedH11Protocol.per_client = {}  # one count per server (the class is made per server)
    return BoundedH11Protocol


class RestServer:
    """uvicorn in a background thread over an already bound socket."""

    def __init__(self, server, sock: socket.socket):
        import uvicorn

        self.sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            make_app(server),
            http=_protocol_class(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=5,
            limit_concurrency=1000,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="rest", daemon=True)

    def start(self) -> RestServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._uvicorn.started:
            raise RadPathError(f"the REST server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=5)
