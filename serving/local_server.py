"""The built-in server: TF Serving's gRPC services and REST endpoints over the same SavedModels.

Used where `tensorflow_model_server` cannot be installed (these machines: not on PyPI, not in
Debian, no Docker engine); production runs the official image. Implements
`PredictionService.Predict` / `GetModelMetadata`, `ModelService.GetModelStatus`, and REST
`POST /v1/models/<name>[/versions/<v>]:predict`, `GET /v1/models/<name>[/versions/<v>]`,
`GET /v1/models/<name>/metadata`, `GET /monitoring/prometheus/metrics`, with TF Serving's status
codes (NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad tensor).
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np

from . import GRPC_MAX_MESSAGE_BYTES
from .batcher import Batcher
from .model_config import ModelEntry
from .model_registry import InvalidArgument, LoadedVersion, ModelRegistry, NotFound
from .protos import from_proto, to_proto
from contract.signature import SIGNATURE_NAME

log = logging.getLogger(__name__)


def _tensor_to_numpy(proto) -> np.ndarray:
    try:
        return from_proto(proto)
    except Exception as exc:
        raise InvalidArgument(f"malformed TensorProto ({exc})") from None


class Metrics:
    """Request counters and latency in Prometheus text format."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def observe(self, api: str, model: str, code: str, seconds: float) -> None:
        with self._lock:
            self.counts[(api, model, code)] = self.counts.get((api, model, code), 0) + 1
            self.seconds[(api, model)] = self.seconds.get((api, model), 0.0) + seconds

    def text(self) -> str:
        with self._lock:
            lines = ["# TYPE radpath_requests_total counter"]
            lines += [f'radpath_requests_total{{api="{a}",model="{m}",code="{c}"}} {n}' for (a, m, c), n in sorted(self.counts.items())]
            lines.append("# TYPE radpath_request_seconds_total counter")
            lines += [f'radpath_request_seconds_total{{api="{a}",model="{m}"}} {s:.6f}' for (a, m), s in sorted(self.seconds.items())]
        return "\n".join(lines) + "\n"


class Server:
    """Registry + optional batching + the two front ends."""

    def __init__(self, entries: list[ModelEntry], grpc_port: int = 8500, rest_port: int = 8501,
                 batching: dict[str, int] | None = None, poll_seconds: float = 2.0, host: str = "0.0.0.0"):
        self.registry = ModelRegistry(entries, poll_seconds)
        self.batching = batching
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._batchers_lock = threading.Lock()
        self.metrics = Metrics()
        self.grpc_port, self.rest_port, self.host = grpc_port, rest_port, host
        self._grpc = None
        self._http = None

    # -- inference
    def predict(self, name: str, version: int | None, inputs: dict[str, np.ndarray]) -> tuple[LoadedVersion, dict]:
        lv = self.registry.get(name, version)
        if not self.batching:
            return lv, lv.run(inputs)
        key = (lv.name, lv.version)
        with self._batchers_lock:
            batcher = self._batchers.get(key)
            if batcher is None or batcher.target is not lv:
                batcher = self._batchers[key] = Batcher(lv, **self.batching)
        return lv, batcher.submit(inputs)

    # -- lifecycle
    def start(self) -> "Server":
        self.registry.start()
        self._grpc = _make_grpc_server(self)
        self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:{self.grpc_port}")
        self._grpc.start()
        self._http = ThreadingHTTPServer((self.host, self.rest_port), _rest_handler(self))
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="rest", daemon=True).start()
        log.info("serving gRPC on %d, REST on %d", self.grpc_port, self.rest_port)
        return self

    def stop(self) -> None:
        self.registry.stop()
        if self._grpc:
            self._grpc.stop(grace=1)
        if self._http:
            self._http.shutdown()

    def wait(self) -> None:
        self._grpc.wait_for_termination()


# ---------------------------------------------------------------- gRPC
def _make_grpc_server(server: Server):
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                         predict_pb2, prediction_service_pb2_grpc)

    def aborting(api: str):
        def wrap(fn):
            def handler(self, request, context):
                t0 = time.perf_counter()
                name = request.model_spec.name
                try:
                    response = fn(self, request, context)
                    server.metrics.observe(api, name, "OK", time.perf_counter() - t0)
                    return response
                except NotFound as exc:
                    server.metrics.observe(api, name, "NOT_FOUND", time.perf_counter() - t0)
                    context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
                except InvalidArgument as exc:
                    server.metrics.observe(api, name, "INVALID_ARGUMENT", time.perf_counter() - t0)
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return handler
        return wrap

    def version_of(spec) -> int | None:
        return spec.version.value if spec.HasField("version") else None

    def check_signature(spec) -> None:
        if spec.signature_name not in ("", SIGNATURE_NAME):
            raise InvalidArgument(f"Serving signature key {spec.signature_name!r} not found; use {SIGNATURE_NAME!r}")

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @aborting("predict")
        def Predict(self, request, context):
            check_signature(request.model_spec)
            inputs = {k: _tensor_to_numpy(v) for k, v in request.inputs.items()}
            lv, outputs = server.predict(request.model_spec.name, version_of(request.model_spec), inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise InvalidArgument(f"output_filter names unknown outputs {unknown}; outputs are {sorted(outputs)}")
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = lv.name
            resp.model_spec.version.value = lv.version
            resp.model_spec.signature_name = SIGNATURE_NAME
            for k in wanted:
                resp.outputs[k].CopyFrom(to_proto(outputs[k]))
            return resp

        @aborting("metadata")
        def GetModelMetadata(self, request, context):
            if list(request.metadata_field) not in ([], ["signature_def"]):
                raise InvalidArgument(f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}")
            lv = server.registry.get(request.model_spec.name, version_of(request.model_spec))
            resp = get_model_metadata_pb2.GetModelMetadataResponse()
            resp.model_spec.name = lv.name
            resp.model_spec.version.value = lv.version
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            sig_map.signature_def[SIGNATURE_NAME].CopyFrom(lv.signature_def)
            resp.metadata["signature_def"].Pack(sig_map)
            return resp

        def Classify(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "use Predict: the glioma model has a predict signature")

        Regress = MultiInference = Classify

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        @aborting("status")
        def GetModelStatus(self, request, context):
            version = version_of(request.model_spec)
            loaded = server.registry.loaded_versions(request.model_spec.name)
            if version is not None and version not in loaded:
                raise NotFound(f"Could not find version {version} of model {request.model_spec.name!r} (loaded: {loaded})")
            if not loaded:
                raise NotFound(f"Could not find any versions of model {request.model_spec.name!r}")
            resp = get_model_status_pb2.GetModelStatusResponse()
            for v in ([version] if version is not None else loaded):
                resp.model_version_status.add(version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            return resp

    options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES)]
    g = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), g)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), g)
    return g


# ---------------------------------------------------------------- REST
_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")


def _rest_handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # route access logs to logging, not stderr
            log.debug("rest: " + fmt, *args)

        def _send(self, code: int, body: dict | str, content_type: str = "application/json") -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/monitoring/prometheus/metrics":
                return self._send(200, server.metrics.text(), "text/plain; version=0.0.4")
            m = _STATUS.match(self.path)
            if not m:
                return self._send(404, {"error": f"unknown path {self.path}"})
            name, version, metadata = m.group(1), m.group(2), m.group(3)
            try:
                if metadata:
                    lv = server.registry.get(name, int(version) if version else None)
                    return self._send(200, {"model_spec": {"name": name, "version": str(lv.version)},
                                            "metadata": {"signature_def": {"inputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for k, s in lv.inputs.items()},
                                                                           "outputs": lv.outputs}}})
                loaded = server.registry.loaded_versions(name)
                wanted = [int(version)] if version else loaded
                if not loaded or any(v not in loaded for v in wanted):
                    raise NotFound(f"Could not find version {version} of model {name!r}" if version
                                   else f"Could not find any versions of model {name!r}")
                return self._send(200, {"model_version_status": [
                    {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                    for v in wanted]})
            except NotFound as exc:
                return self._send(404, {"error": str(exc)})

        def do_POST(self):
            m = _PREDICT.match(self.path)
            if not m:
                return self._send(404, {"error": f"unknown path {self.path}; expected /v1/models/<name>[/versions/<v>]:predict"})
            t0 = time.perf_counter()
            name, version = m.group(1), int(m.group(2)) if m.group(2) else None
            try:
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"body is not JSON ({exc})") from None
                lv = server.registry.get(name, version)
                inputs, row_format = _rest_inputs(body, lv)
                _, outputs = server.predict(name, version, inputs)
                server.metrics.observe("rest_predict", name, "OK", time.perf_counter() - t0)
                return self._send(200, _rest_outputs(outputs, row_format))
            except NotFound as exc:
                server.metrics.observe("rest_predict", name, "NOT_FOUND", time.perf_counter() - t0)
                return self._send(404, {"error": str(exc)})
            except InvalidArgument as exc:
                server.metrics.observe("rest_predict", name, "INVALID_ARGUMENT", time.perf_counter() - t0)
                return self._send(400, {"error": str(exc)})
    return Handler


def _rest_inputs(body: dict, lv: LoadedVersion) -> tuple[dict[str, np.ndarray], bool]:
    """TF Serving's REST formats: row ("instances") or columnar ("inputs")."""
    names = list(lv.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidArgument("'instances' must be a non-empty list")
        if len(names) == 1 and not isinstance(rows[0], dict):
            cols = {names[0]: rows}
        else:
            if not all(isinstance(r, dict) for r in rows):
                raise InvalidArgument(f"with several inputs {names}, each instance must be an object keyed by input name")
            cols = {k: [r.get(k) for r in rows] for k in names}
        row_format = True
    elif "inputs" in body:
        cols = body["inputs"] if isinstance(body["inputs"], dict) else {names[0]: body["inputs"]}
        row_format = False
    else:
        raise InvalidArgument("request body needs 'instances' (row format) or 'inputs' (columnar format)")
    out = {}
    for k, v in cols.items():
        spec = lv.inputs.get(k)
        try:
            out[k] = np.asarray(v, dtype=spec.dtype.as_numpy_dtype if spec is not None else np.float32)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"input '{k}' is not a rectangular numeric array ({exc})") from None
    return out, row_format


def _rest_outputs(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    def plain(a: np.ndarray):
        return [x.decode() if isinstance(x, bytes) else x for x in a.tolist()] if a.dtype == object else a.tolist()
    if row_format:
        n = len(next(iter(outputs.values())))
        keys = sorted(outputs)
        return {"predictions": [{k: plain(outputs[k][i:i + 1])[0] for k in keys} for i in range(n)]}
    return {"outputs": {k: plain(v) for k, v in outputs.items()}}
