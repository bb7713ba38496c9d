"""The gRPC client of the serving stack (TensorFlow Serving's PredictionService protos).

    client = GlioClient("localhost:8500")
    result = client.classify("cohort/Radiology/CPM19_CBICA_AAB_1")   # or four paths, age optional
    result.label, result.probabilities, result.slice_index, result.model_version

Preprocessing comes from `preprocess` only, the same code that built the training examples.
UNAVAILABLE is retried with exponential backoff; INVALID_ARGUMENT, NOT_FOUND and
DEADLINE_EXCEEDED become specific errors with a message that says what to do.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import grpc
import numpy as np

from preprocess import find_tumor, load_case, model_input, model_inputs
from preprocess.case import CLASSES, Case
from preprocess.errors import RadPathError
from serving import GRPC_MAX_MESSAGE_BYTES
from train.config import AGE_FILL_DAYS

from serving.protos import fill_proto, from_proto, pb

log = logging.getLogger(__name__)



class ServingError(RadPathError):
    """The server could not answer (base of the errors below)."""


class ServerUnavailableError(ServingError):
    pass


class ModelNotFoundError(ServingError):
    pass


class InvalidInputError(ServingError):
    pass


class DeadlineError(ServingError):
    pass


@dataclass(frozen=True)
class Classification:
    case_id: str
    label: str
    probabilities: dict[str, float]
    slice_index: int
    tumor_found: bool
    model: str
    model_version: int
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"case_id": self.case_id, "class": self.label, "probabilities": self.probabilities,
                "slice_index": self.slice_index, "tumor_found": self.tumor_found,
                "model": self.model, "model_version": self.model_version, "seconds": self.timings}


class GlioClient:
    """A connection to a TF Serving (or built-in) server holding the glioma model."""

    def __init__(self, target: str = "localhost:8500", model: str = "glioma", version: int | None = None,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.5):
        self.target, self.model, self.version = target, model, version
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES)]
        self._channel = grpc.insecure_channel(target, options=options)
        self._predict = pb.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = pb.model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._wants_age: bool | None = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GlioClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport
    def _spec(self, message) -> None:
        message.model_spec.name = self.model
        if self.version is not None:
            message.model_spec.version.value = self.version

    def _call(self, method, request, what: str):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                code, detail = exc.code(), exc.details()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    log.warning("%s: server %s unavailable (%s); retrying in %.1f s", what, self.target, detail, delay)
                    time.sleep(delay)
                    delay *= 2
                    continue
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise ServerUnavailableError(f"server {self.target} is unavailable after {self.retries + 1} attempts "
                                                 f"({detail}); is `radpath serve` running there?") from None
                if code == grpc.StatusCode.NOT_FOUND:
                    raise ModelNotFoundError(f"server {self.target}: {detail}") from None
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidInputError(f"server {self.target} rejected the input: {detail}") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise DeadlineError(f"server {self.target} did not answer within {self.timeout} s; "
                                        "raise --timeout or check the server's load") from None
                raise ServingError(f"server {self.target}: {code.name}: {detail}") from None

    def status(self) -> list[tuple[int, str]]:
        """[(version, state)] of the model on the server (GetModelStatus)."""
        req = pb.get_model_status_pb2.GetModelStatusRequest()
        self._spec(req)
        resp = self._call(self._models.GetModelStatus, req, "status")
        return [(s.version, pb.get_model_status_pb2.ModelVersionStatus.State.Name(s.state)) for s in resp.model_version_status]

    def wants_age(self) -> bool:
        """Whether the served signature has an `age_days` input (GetModelMetadata)."""
        if self._wants_age is None:
            get_model_metadata_pb2 = pb.get_model_metadata_pb2
            req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._spec(req)
            resp = self._call(self._predict.GetModelMetadata, req, "metadata")
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            resp.metadata["signature_def"].Unpack(sig_map)
            self._wants_age = "age_days" in sig_map.signature_def["serving_default"].inputs
        return self._wants_age

    def predict(self, images: np.ndarray, ages_days: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """(probabilities float32 [n, 3] in order A, O, G, model version) for images [n, 224, 224, 4]."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1:] != (224, 224, 4):
            raise InvalidInputError(f"images must be [n, 224, 224, 4], got {list(images.shape)}")
        req = pb.predict_pb2.PredictRequest()
        self._spec(req)
        req.model_spec.signature_name = "serving_default"
        fill_proto(req.inputs["image"], images)
        if self.wants_age():
            ages = np.full(len(images), AGE_FILL_DAYS, np.float32) if ages_days is None else np.asarray(ages_days, np.float32)
            fill_proto(req.inputs["age_days"], np.nan_to_num(ages, nan=AGE_FILL_DAYS))
        req.output_filter.append("probabilities")
        resp = self._call(self._predict.Predict, req, "predict")
        return from_proto(resp.outputs["probabilities"]), resp.model_spec.version.value

    # -- the product
    def classify_case(self, case: Case, tta: bool = False) -> Classification:
        """Classify an already loaded case (see `classify`)."""
        t0 = time.perf_counter()
        tumor = find_tumor(case)
        if tta:  # the same views as training's test-time averaging: slices -1, 0, +1, each flipped
            views = model_inputs(case, (-1, 0, 1), tumor.index)
            x = np.concatenate([views, views[:, :, ::-1, :]])
        else:
            x = model_input(case, tumor.index)[None]
        t1 = time.perf_counter()
        ages = None if case.age_days is None else np.full(len(x), case.age_days, np.float32)
        probs, version = self.predict(x, ages)
        t2 = time.perf_counter()
        p = probs.mean(axis=0)
        return Classification(case.case_id, CLASSES[int(p.argmax())], {c: float(v) for c, v in zip(CLASSES, p)},
                              tumor.index, tumor.found, self.model, version,
                              {"preprocess": round(t1 - t0, 4), "inference": round(t2 - t1, 4)})

    def classify(self, source: str | Path | Mapping[str, str | Path], age_days: float | None = None,
                 tta: bool = False) -> Classification:
        """Load a case (folder or the four files), preprocess, ask the server; age is optional."""
        t0 = time.perf_counter()
        case = load_case(source, age_days=age_days)
        load_s = time.perf_counter() - t0
        result = self.classify_case(case, tta)
        result.timings["load"] = round(load_s, 4)
        return result
