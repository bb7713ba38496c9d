"""The built-in server: TF Serving's gRPC services and REST endpoints over the same SavedModels.

Used where `tensorflow_model_server` cannot be installed (these machines: not on PyPI, not in
Debian, no Docker engine); production runs the official image. Implements
`PredictionService.Predict` / `GetModelMetadata`, `ModelService.GetModelStatus`, and REST
(`serving.rest`: `POST /v1/models/<name>[/versions/<v>]:predict`, `GET /v1/models/<name>[/versions/<v>]`,
`GET /v1/models/<name>/metadata`, `GET /monitoring/prometheus/metrics`), with TF Serving's status
codes (NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad tensor).

Every request is validated on its own before it may join a batch (input names, dtype, shape and
value count from the TensorProto's own fields before a value is decoded, batch 1..`max_rows`,
finite values), so a 50-byte request cannot make the server allocate gigabytes and a malformed
request never fails a concurrent valid one. Ports are bound exclusively (no SO_REUSEPORT): a second
server on a port in use refuses to start with one line instead of silently taking half the traffic.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent import futures

import grpc
import numpy as np

from radpath.contract.errors import (
    InvalidArgument,
    NotFound,
    RadPathError,
    Unimplemented,
)
from radpath.contract.signature import SIGNATURE_NAME

from . import GRPC_MAX_MESSAGE_BYTES
from .batcher import Batcher, check_parameters
from .error_answer import error_answer
from .explain_queue import ExplainQueue, PredictGate
from .grpc_limits import BUDGET_REQUESTS, GRPC_WORKERS, MAX_CONCURRENT_RPCS, RequestBudget, max_request_bytes
from .model_config import ModelEntry
from .model_registry import DEFAULT_MAX_ROWS, LoadedVersion, ModelRegistry, check_spec
from .predict_wire import WireError, split_request
from .protos import from_proto, pb, to_proto

log = logging.getLogger(__name__)


def grpc_server_options(max_rows: int) -> list[tuple[str, int]]:
    """The gRPC server's channel options: messages no larger than the largest valid request
    (`grpc_limits`), and an exclusive port."""
    return [
        ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", max_request_bytes(max_rows)),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ]


def tensor_to_numpy(key: str, proto, spec, max_rows: int, content=None) -> np.ndarray:
    """Decode one request TensorProto after checking, from its own fields, that it is what the
    signature takes: dtype, shape (a scalar or an empty batch is refused) and value count, so that
    decoding (which may broadcast a single value to the declared shape) allocates at most one
    valid request's worth of memory."""
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"input '{key}' has an unknown rank; expected shape {spec.shape.as_list()}")
    if proto.dtype != spec.dtype.as_datatype_enum:
        types = pb.types_pb2
        got = types.DataType.Name(proto.dtype) if proto.dtype in types.DataType.values() else proto.dtype
        raise InvalidArgument(f"input '{key}' must be {spec.dtype.name}, got {got}")
    shape = [int(d.size) for d in proto.tensor_shape.dim]
    check_spec(key, spec, spec.dtype.as_numpy_dtype, shape, max_rows)
    try:
        return from_proto(proto, max_elements=int(np.prod(shape, dtype=np.int64)), content=content)
    except Exception as exc:  # count/size mismatch, unsupported dtype
        raise InvalidArgument(f"malformed TensorProto for input '{key}' ({exc})") from None


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
        def label(v: str) -> str:  # Prometheus label value escaping (model names come from requests)
            return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        with self._lock:
            lines = ["# TYPE radpath_requests_total counter"]
            lines += [
                f'radpath_requests_total{{api="{label(a)}",model="{label(m)}",code="{label(c)}"}} {n}'
                for (a, m, c), n in sorted(self.counts.items())
            ]
            lines.append("# TYPE radpath_request_seconds_total counter")
            lines += [
                f'radpath_request_seconds_total{{api="{label(a)}",model="{label(m)}"}} {s:.6f}'
                for (a, m), s in sorted(self.seconds.items())
            ]
        return "\n".join(lines) + "\n"


class Server:
    """Registry + optional batching + the two front ends."""

    def __init__(
        self,
        entries: list[ModelEntry],
        grpc_port: int = 8500,
        rest_port: int = 8501,
        batching: dict | None = None,
        poll_seconds: float = 2.0,
        host: str = "127.0.0.1",
        explain: dict | None = None,
    ):
        """`host`: the interface both front ends listen on (loopback unless told otherwise; 0.0.0.0
        in a container). `explain`: `ExplainQueue` settings (max_rows, concurrency, max_waiting)."""
        self.registry = ModelRegistry(entries, poll_seconds)
        self.batching = check_parameters(dict(batching)) if batching else None
        self.max_rows = self.batching.get("max_batch_size", 16) if self.batching else DEFAULT_MAX_ROWS
        """Largest batch one request may carry (TF Serving refuses a task larger than max_batch_size)."""
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._batchers_lock = threading.Lock()
        self.metrics = Metrics()
        self.request_budget = RequestBudget(BUDGET_REQUESTS * max_request_bytes(self.max_rows))
        """gRPC Predict bytes being decoded or run at once (`grpc_limits`)."""
        self.predicting = PredictGate()
        self.explain = ExplainQueue(self.predicting, **(explain or {}))
        self.grpc_port, self.rest_port, self.host = grpc_port, rest_port, host
        self._grpc = None
        self._rest = None

    # -- inference
    def run(self, lv: LoadedVersion, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate one request on its own, then run it: a Predict alone or batched with other valid
        ones; `explain` (and any other signature) unbatched on its own queue, behind Predict."""
        rows = lv.validate(inputs, self.max_rows)
        if lv.signature_name != SIGNATURE_NAME:
            return self.explain.run(rows, lambda: lv.run(inputs, validated=True))
        with self.predicting:
            if not self.batching:
                return lv.run(inputs, validated=True)
            key = (lv.name, lv.version)
            with self._batchers_lock:
                batcher = self._batchers.get(key)
                if batcher is None or batcher.target is not lv:
                    batcher = self._batchers[key] = Batcher(lv, **self.batching)
            return batcher.submit(inputs, rows)

    def predict(self, name: str, version: int | None, inputs: dict[str, np.ndarray]) -> tuple[LoadedVersion, dict]:
        lv = self.registry.get(name, version)
        return lv, self.run(lv, inputs)

    # -- lifecycle
    def start(self) -> Server:
        """Bind both ports first (a port in use fails at once, before minutes of model loading),
        then load the models, then serve."""
        from .rest import RestServer, bind

        _check_port_free(self.host, self.grpc_port)  # before gRPC core logs its own multi-line error
        self._grpc = _make_grpc_server(self)
        try:
            bound = self._grpc.add_insecure_port(f"{self.host}:{self.grpc_port}")
        except RuntimeError:
            bound = 0
        if not bound:
            raise _grpc_port_error(self.host, self.grpc_port, "in use?")
        self.grpc_port = bound
        try:
            sock = bind(self.host, self.rest_port)
        except RadPathError:
            self._grpc.stop(None)  # release the gRPC port too
            raise
        self.rest_port = sock.getsockname()[1]
        self.registry.start()
        self._grpc.start()
        self._rest = RestServer(self, sock).start()
        log.info("serving gRPC on %d, REST on %d", self.grpc_port, self.rest_port)
        return self

    def stop(self) -> None:
        self.registry.stop()
        if self._grpc:
            self._grpc.stop(grace=1).wait(5)  # the port is free when this returns
        if self._rest:
            self._rest.stop()

    def wait(self) -> None:
        self._grpc.wait_for_termination()


def _grpc_port_error(host: str, port: int, why: str) -> RadPathError:
    return RadPathError(
        f"gRPC port {port} on {host} is not available ({why}); is another `radpath serve` "
        "running? Stop it or choose --grpc-port"
    )


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise _grpc_port_error(host, port, exc.strerror or str(exc)) from None


# ---------------------------------------------------------------- gRPC
def _make_grpc_server(server: Server):
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def decode_predict(raw: bytes) -> tuple:
        """(PredictRequest without tensor bytes, {input: its tensor_content, a view of `raw`})."""
        try:
            small, contents = split_request(raw)
        except WireError:  # protobuf's own parser decides
            small, contents = raw, {}
        try:
            return predict_pb2.PredictRequest.FromString(small), contents
        except DecodeError as exc:
            raise InvalidArgument(f"the request is not a PredictRequest ({exc})") from None

    def aborting(api: str, decode=None):
        def wrap(fn):
            def handler(self, request, context):
                t0 = time.perf_counter()
                name = ""
                held = 0
                try:
                    extra = ()
                    if decode is not None:  # raw bytes: decoded and run within the request budget
                        held = server.request_budget.acquire(len(request))
                        request, *extra = decode(request)
                    name = request.model_spec.name
                    response = fn(self, request, context, *extra)
                    server.metrics.observe(api, name, "OK", time.perf_counter() - t0)
                    return response
                except Exception as exc:  # answered from the one table (contract.errors)
                    status, message = error_answer(exc, api)
                    server.metrics.observe(api, name, status.grpc, time.perf_counter() - t0)
                    context.abort(grpc.StatusCode[status.grpc], message)
                finally:
                    if held:
                        server.request_budget.release(held)

            return handler

        return wrap

    def version_of(spec) -> int | None:
        return spec.version.value if spec.HasField("version") else None

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @aborting("predict", decode=decode_predict)
        def Predict(self, request, context, contents=None):
            lv = server.registry.get(request.model_spec.name, version_of(request.model_spec))
            lv = lv.signature(request.model_spec.signature_name)
            given = set(request.inputs)
            if not given:
                raise InvalidArgument(f"the request has no inputs; model {lv.name!r} takes {sorted(lv.inputs)}")
            missing, unknown = sorted(set(lv.inputs) - given), sorted(given - set(lv.inputs))
            if missing or unknown:
                raise InvalidArgument(
                    f"model {lv.name!r} version {lv.version} takes inputs {sorted(lv.inputs)}; "
                    f"missing {missing or 'none'}, unknown {unknown or 'none'}"
                )
            inputs = {
                k: tensor_to_numpy(k, request.inputs[k], spec, server.max_rows, contents.get(k))
                for k, spec in lv.inputs.items()
            }
            outputs = server.run(lv, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise InvalidArgument(f"output_filter names unknown outputs {unknown}; outputs are {sorted(outputs)}")
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = lv.name
            resp.model_spec.version.value = lv.version
            resp.model_spec.signature_name = lv.signature_name
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
            for signature in (lv, *lv.others.values()):
                sig_map.signature_def[signature.signature_name].CopyFrom(signature.signature_def)
            resp.metadata["signature_def"].Pack(sig_map)
            return resp

        @aborting("classify")
        def Classify(self, request, context):
            raise Unimplemented("use Predict: the glioma model has a predict signature")

        Regress = MultiInference = Classify

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        @aborting("status")
        def GetModelStatus(self, request, context):
            version = version_of(request.model_spec)
            loaded = server.registry.loaded_versions(request.model_spec.name)
            if version is not None and version not in loaded:
                raise NotFound(
                    f"Could not find version {version} of model {request.model_spec.name!r} (loaded: {loaded})"
                )
            if not loaded:
                raise NotFound(f"Could not find any versions of model {request.model_spec.name!r}")
            resp = get_model_status_pb2.GetModelStatusResponse()
            for v in [version] if version is not None else loaded:
                resp.model_version_status.add(version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            return resp

    return _grpc_server_for(Prediction(), Models(), grpc_server_options(server.max_rows))


def _grpc_server_for(prediction, models, options):
    """A gRPC server with TF Serving's two services; Predict gets the raw request bytes (its tensor
    contents are read in place, `predict_wire`), the other methods their parsed messages."""
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        inference_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        regression_pb2,
    )

    g = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS),
        options=options,
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    handlers = {  # as prediction_service_pb2_grpc registers them, but Predict gets the raw bytes
        method: grpc.unary_unary_rpc_method_handler(
            getattr(prediction, method),
            request_deserializer=None if method == "Predict" else request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
        for method, request_type, response_type in [
            ("Predict", predict_pb2.PredictRequest, predict_pb2.PredictResponse),
            (
                "GetModelMetadata",
                get_model_metadata_pb2.GetModelMetadataRequest,
                get_model_metadata_pb2.GetModelMetadataResponse,
            ),
            ("Classify", classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
            ("Regress", regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
            ("MultiInference", inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
        ]
    }
    g.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", handlers),)
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, g)
    return g
