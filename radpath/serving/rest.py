"""TF Serving's REST API for the built-in server, on a maintained ASGI stack (Starlette + uvicorn).

    POST /v1/models/<name>[/versions/<v>]:predict      row ("instances") or columnar ("inputs") JSON
    GET  /v1/models/<name>[/versions/<v>]              version status
    GET  /v1/models/<name>[/versions/<v>]/metadata     signature
    GET  /monitoring/prometheus/metrics

Every answer is JSON (`{"error": ...}` for errors, TF Serving's shape), including the ones the HTTP
layer gives for a request it cannot parse (a bad Content-Length, a broken request line): never a
dropped connection. Bodies are capped (`MAX_BODY_BYTES`, the gRPC message limit) and must arrive
within `BODY_TIMEOUT_S`; a stalled client costs a socket, not a thread. NaN or inf can never reach
the wire: inputs must be finite (400) and a non-finite output is a 500 with a JSON error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from radpath.contract.errors import RadPathError

if TYPE_CHECKING:
    from starlette.responses import Response

from . import GRPC_MAX_MESSAGE_BYTES
from .model_registry import InvalidArgument, LoadedVersion, ModelFailure, NotFound, Unavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = GRPC_MAX_MESSAGE_BYTES
BODY_TIMEOUT_S = 30.0

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _json(status: int, body) -> Response:
    from starlette.responses import Response

    try:
        data = json.dumps(body, allow_nan=False)
    except ValueError:  # a NaN slipped through: never send a body that is not JSON
        status, data = 500, json.dumps({"error": "the model produced a non-finite value"})
    return Response(data, status_code=status, media_type="application/json")


def make_app(server):
    """The Starlette app over a `serving.local_server.Server` (registry, predict, metrics)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request):
        path = request.url.path
        try:
            if request.method == "GET":
                return await run_in_threadpool(_get, server, path)
            return await _post(server, request, path, run_in_threadpool)
        except HttpError as exc:
            return _json(exc.status, {"error": str(exc)})

    async def metrics(request: Request):
        return Response(server.metrics.text(), media_type="text/plain; version=0.0.4")

    async def not_found(request: Request, exc):
        return _json(
            getattr(exc, "status_code", 404),
            {"error": f"{getattr(exc, 'detail', 'not found')}: {request.method} {request.url.path}"},
        )

    async def crashed(request: Request, exc: Exception):
        log.exception("REST request failed")
        return _json(500, {"error": f"internal error ({type(exc).__name__})"})

    routes = [
        Route("/monitoring/prometheus/metrics", metrics, methods=["GET"]),
        Route("/{path:path}", endpoint, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: crashed})


def _get(server, path: str):
    m = _STATUS.match(path)
    if not m:
        raise HttpError(404, f"unknown path {path}")
    name, version, metadata = m.group(1), m.group(2), m.group(3)
    try:
        if metadata:
            lv = server.registry.get(name, int(version) if version else None)
            return _json(
                200,
                {
                    "model_spec": {"name": name, "version": str(lv.version)},
                    "metadata": {
                        "signature_def": {
                            "inputs": {
                                k: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for k, s in lv.inputs.items()
                            },
                            "outputs": lv.outputs,
                        }
                    },
                },
            )
        loaded = server.registry.loaded_versions(name)
        wanted = [int(version)] if version else loaded
        if not loaded or any(v not in loaded for v in wanted):
            raise NotFound(
                f"Could not find version {version} of model {name!r}"
                if version
                else f"Could not find any versions of model {name!r}"
            )
        return _json(
            200,
            {
                "model_version_status": [
                    {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                    for v in wanted
                ]
            },
        )
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None


async def _read_body(request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, f"Content-Length {declared!r} is not a byte count")
        if int(declared) > MAX_BODY_BYTES:
            raise HttpError(413, f"body of {declared} bytes is over the {MAX_BODY_BYTES} byte limit")
    chunks, size = [], 0

    async def gather():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise HttpError(413, f"body is over the {MAX_BODY_BYTES} byte limit")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(gather(), BODY_TIMEOUT_S)
    except TimeoutError:
        raise HttpError(
            408, f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s ({size} of {declared or 'unknown'} bytes)"
        ) from None
    return b"".join(chunks)


def parse_body(body: bytes) -> dict:
    """The request JSON object, or HttpError(400) saying what is wrong with it."""
    if not body.strip():
        raise HttpError(400, "empty body; expected a JSON object with 'instances' or 'inputs'")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise HttpError(400, "JSON nested too deeply") from None
    except ValueError as exc:
        raise HttpError(400, f"body is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise HttpError(
            400, f"body must be a JSON object with 'instances' or 'inputs', got a JSON {type(parsed).__name__}"
        )
    return parsed


async def _post(server, request, path: str, run_in_threadpool):
    m = _PREDICT.match(path)
    if not m:
        raise HttpError(404, f"unknown path {path}; expected /v1/models/<name>[/versions/<v>]:predict")
    t0 = time.perf_counter()
    name, version = m.group(1), int(m.group(2)) if m.group(2) else None
    code = "OK"
    try:
        body = await _read_body(request)
        return await run_in_threadpool(_predict, server, name, version, body)
    except HttpError as exc:
        code = str(exc.status)
        raise
    except NotFound as exc:
        code = "NOT_FOUND"
        raise HttpError(404, str(exc)) from None
    except InvalidArgument as exc:
        code = "INVALID_ARGUMENT"
        raise HttpError(400, str(exc)) from None
    except Unavailable as exc:
        code = "UNAVAILABLE"
        raise HttpError(503, str(exc)) from None
    except ModelFailure as exc:
        code = "INTERNAL"
        raise HttpError(500, str(exc)) from None
    finally:
        server.metrics.observe("rest_predict", name, code, time.perf_counter() - t0)


def _predict(server, name: str, version: int | None, body: bytes):
    """Parse, validate and run one REST predict (in a worker thread: parsing megabytes of JSON
    must not stall the event loop)."""
    parsed = parse_body(body)
    lv = server.registry.get(name, version)
    signature = parsed.get("signature_name", "")
    if not isinstance(signature, str):
        raise InvalidArgument(f"signature_name must be a string, got {type(signature).__name__}")
    lv = lv.signature(signature)
    inputs, row_format = rest_inputs(parsed, lv, server.max_rows)
    outputs = server.run(lv, inputs)
    return _json(200, rest_outputs(outputs, row_format))


def rest_inputs(body: dict, lv: LoadedVersion, max_rows: int = 2**31) -> tuple[dict[str, np.ndarray], bool]:
    """TF Serving's REST formats: row ("instances") or columnar ("inputs"), as numpy arrays of the
    signature's dtypes. Raises InvalidArgument for anything that is not such a tensor, and for a
    batch over `max_rows` before converting it (converting JSON lists is the costly part)."""
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


def _protocol_class():
    """uvicorn's h11 protocol, answering an unparseable request (bad Content-Length, broken request
    line) with a JSON 400 like every other error, instead of text/plain."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonErrorH11Protocol(H11Protocol):
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

    return JsonErrorH11Protocol


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
