"""The gRPC client of the serving stack (TensorFlow Serving's PredictionService API).

    client = GlioClient("localhost:8500")
    result = client.classify("cohort/Radiology/CPM19_CBICA_AAB_1")   # or four paths, age optional
    result.label, result.probabilities, result.slice_index, result.model_version, result.warnings

Light: the messages are `contract.tfs_api`'s (TF Serving's wire format, no TensorFlow), the model
input and its test-time views are `contract.model_io`'s, the signature names `contract.signature`'s;
preprocessing comes from `preprocess` only, the same code that built the training examples.
UNAVAILABLE is retried with exponential backoff; INVALID_ARGUMENT, NOT_FOUND and
DEADLINE_EXCEEDED become specific errors with a message that says what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from radpath.contract.errors import (
    DeadlineError,
    InvalidInputError,
    ModelNotFoundError,
    ServerUnavailableError,
    ServingError,
)
from radpath.contract.model_io import (
    CLASSES,
    TTA_OFFSETS,
    TUMOR_STATS,
    VIEWS,
    check_input,
    fill_ages,
    round_input,
    tta_views,
)
from radpath.contract.refer import refer_reasons, threshold_assessed
from radpath.contract.signature import (
    AGE_INPUT,
    ATTRIBUTION_OUTPUT,
    DEFAULT_MODEL_NAME,
    EXPLAIN_SIGNATURE,
    GRPC_MAX_MESSAGE_BYTES,
    IMAGE_INPUT,
    PROBABILITIES_OUTPUT,
    REFER_THRESHOLD_OUTPUT,
    SIGNATURE_NAME,
    TUMOR_STATS_INPUT,
)
from radpath.contract.tensor_codec import TensorCodecError, fill_tensor, from_proto
from radpath.contract.tfs_api import serving_apis_pb2 as apis
from radpath.contract.tfs_api import serving_apis_pb2_grpc as services
from radpath.contract.tfs_api import tensor_pb2
from radpath.preprocess import find_tumor, load_case, model_input, model_inputs, tumor_stats
from radpath.preprocess.case import Case
from radpath.preprocess.quality import case_warnings as collect_warnings

log = logging.getLogger(__name__)


def case_warnings(case: Case) -> list[dict[str, str]]:
    """The case's warnings as {code, message} (`preprocess.findings` codes, collected by
    `preprocess.quality.case_warnings`: brain mask, contrast, tumour detection, quality checks)."""
    return [w.as_dict() for w in collect_warnings(case)]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def predict_request_bytes(req, key: str, array: np.ndarray) -> bytes:
    """`req` serialized with `array` added as input `key`, its bytes copied once (into the
    message) instead of four times (tobytes, into the protobuf, serialized, ...). Protobuf's wire
    format: `inputs` is field 2 of PredictRequest, a map entry is (key = 1, value = 2), and
    tensor_content is field 4 of TensorProto; fields may come in any order."""
    header = tensor_pb2.TensorProto(dtype=tensor_pb2.DT_FLOAT)
    for size in array.shape:
        header.tensor_shape.dim.add(size=int(size))
    content = memoryview(array).cast("B")
    tensor_head = header.SerializeToString() + b"\x22" + _varint(content.nbytes)
    name = key.encode()
    entry_head = b"\x0a" + _varint(len(name)) + name + b"\x12" + _varint(len(tensor_head) + content.nbytes)
    entry_size = len(entry_head) + len(tensor_head) + content.nbytes
    return b"".join([req.SerializeToString(), b"\x12", _varint(entry_size), entry_head, tensor_head, content])


def stats_rows(tumor_stats: np.ndarray | None, n: int) -> np.ndarray:
    """float32 [n, len(TUMOR_STATS)]: one row per image (one given row repeated: every view of a case
    has its case's statistics). Missing ones are refused: there is no neutral fill for them."""
    if tumor_stats is None:
        raise InvalidInputError(
            "the served model takes the tumour statistics: pass tumor_stats (preprocess.tumor_stats of the "
            "case), or use classify / classify_case, which compute them"
        )
    stats = np.asarray(tumor_stats, np.float32)
    if stats.size % len(TUMOR_STATS):
        raise InvalidInputError(f"tumor_stats: expected rows of {len(TUMOR_STATS)} values, got shape {stats.shape}")
    stats = stats.reshape(-1, len(TUMOR_STATS))
    if len(stats) == 1 and n > 1:
        stats = np.repeat(stats, n, axis=0)
    if stats.shape != (n, len(TUMOR_STATS)) or not np.isfinite(stats).all():
        raise InvalidInputError(
            f"tumor_stats: expected {n} finite rows of {len(TUMOR_STATS)} values, got {stats.shape}"
        )
    return stats


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
    warnings: list[dict[str, str]] = field(default_factory=list)
    """{code, message} per warning (codes of `preprocess.findings`)."""
    age_used: bool = False
    """Whether the model took the case's age (False for a model trained without age)."""
    refer_threshold: float | None = None
    """The model's refer threshold as served (None: a model exported without one; NOT_ASSESSED or
    0.0: one whose confidence was never assessed, see `contract.refer.threshold_assessed`)."""
    refer_reasons: list[str] = field(default_factory=list)
    """Why to refer (`contract.refer`); empty when the answer stands."""

    @property
    def refer(self) -> bool:
        return bool(self.refer_reasons)

    @property
    def threshold_assessed(self) -> bool:
        """Whether the model's refer threshold was fitted on enough held-out cases."""
        return threshold_assessed(self.refer_threshold)

    def as_dict(self) -> dict:
        """The result as the CLI's JSON and the web's stored result: `refer_threshold` is null when the
        threshold was not assessed (its served stand-in, NOT_ASSESSED = 2.0, is a marker, not a
        probability anyone should read), and `threshold_assessed` says so."""
        return {
            "case_id": self.case_id,
            "class": self.label,
            "probabilities": self.probabilities,
            "refer": self.refer,
            "refer_reasons": self.refer_reasons,
            "refer_threshold": self.refer_threshold if self.threshold_assessed else None,
            "threshold_assessed": self.threshold_assessed,
            "slice_index": self.slice_index,
            "tumor_found": self.tumor_found,
            "warnings": self.warnings,
            "age_used": self.age_used,
            "model": self.model,
            "model_version": self.model_version,
            "seconds": self.timings,
        }


class GlioClient:
    """A connection to a TF Serving (or built-in) server holding the glioma model."""

    def __init__(
        self,
        target: str = "localhost:8500",
        model: str = DEFAULT_MODEL_NAME,
        version: int | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
    ):
        if not timeout > 0:
            raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout}")
        if retries < 0:
            raise InvalidInputError(f"retries must be 0 or more, got {retries}")
        self.target, self.model, self.version = target, model, version
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        options = [
            ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
        ]
        self._channel = grpc.insecure_channel(target, options=options)
        self._predict = services.PredictionServiceStub(self._channel)
        self._predict_bytes = self._channel.unary_unary(  # Predict, the request already serialized
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=None,
            response_deserializer=apis.PredictResponse.FromString,
        )
        self._models = services.ModelServiceStub(self._channel)
        self._signatures = None
        self._served: tuple[bool, bool, bool] | None = None  # (takes age, serves the refer threshold, takes stats)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GlioClient:
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
                    raise ServerUnavailableError(
                        f"server {self.target} is unavailable after {self.retries + 1} attempts "
                        f"({detail}); is `radpath serve` running there?"
                    ) from None
                if code == grpc.StatusCode.NOT_FOUND:
                    raise ModelNotFoundError(f"server {self.target}: {detail}") from None
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidInputError(f"server {self.target} rejected the input: {detail}") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise DeadlineError(
                        f"server {self.target} did not answer within {self.timeout} s; "
                        "raise --timeout or check the server's load"
                    ) from None
                raise ServingError(f"server {self.target}: {code.name}: {detail}") from None

    def status(self) -> list[tuple[int, str]]:
        """[(version, state)] of the model on the server (GetModelStatus)."""
        req = apis.GetModelStatusRequest()
        self._spec(req)
        resp = self._call(self._models.GetModelStatus, req, "status")
        return [(s.version, apis.ModelVersionStatus.State.Name(s.state)) for s in resp.model_version_status]

    def signatures(self):
        """The served SignatureDefMap (GetModelMetadata), fetched once."""
        if self._signatures is None:
            req = apis.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._spec(req)
            resp = self._call(self._predict.GetModelMetadata, req, "metadata")
            sig_map = apis.SignatureDefMap()
            if not resp.metadata["signature_def"].Unpack(sig_map):
                raise ServingError(
                    f"server {self.target}: metadata holds {resp.metadata['signature_def'].type_url}, "
                    "not a SignatureDefMap"
                )
            self._signatures = sig_map.signature_def
        return self._signatures

    def _serving(self) -> tuple[bool, bool, bool]:
        """(whether the served signature takes age, whether it outputs the refer threshold, whether it
        takes the tumour statistics), read from the signatures once rather than looked up in the
        SignatureDefMap on every Predict."""
        if self._served is None:
            default = self.signatures()[SIGNATURE_NAME]
            self._served = (
                AGE_INPUT in default.inputs,
                REFER_THRESHOLD_OUTPUT in default.outputs,
                TUMOR_STATS_INPUT in default.inputs,
            )
        return self._served

    def wants_tumor_stats(self) -> bool:
        """Whether the served signature has the tumour statistics input (`preprocess.tumor_stats`)."""
        return self._serving()[2]

    def wants_age(self) -> bool:
        """Whether the served signature has the age input (GetModelMetadata)."""
        return self._serving()[0]

    def can_explain(self) -> bool:
        """Whether the served model has the `explain` signature (models exported since calibration)."""
        return EXPLAIN_SIGNATURE in self.signatures()

    def _request(
        self, signature: str, images: np.ndarray, ages_days: np.ndarray | None, tumor_stats: np.ndarray | None = None
    ) -> tuple:
        """(PredictRequest without the images, the images as contiguous little-endian float32):
        `_send` writes the images' bytes straight into the wire message. `tumor_stats`: one row per
        image, or one row for all (required by a model that takes them, ignored otherwise)."""
        images = np.ascontiguousarray(images, "<f4")
        try:
            check_input(images)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        req = apis.PredictRequest()
        self._spec(req)
        req.model_spec.signature_name = signature
        if self.wants_age():
            fill_tensor(req.inputs[AGE_INPUT], fill_ages(ages_days, len(images)))
        if self.wants_tumor_stats():
            fill_tensor(req.inputs[TUMOR_STATS_INPUT], stats_rows(tumor_stats, len(images)))
        return req, images

    def _send(self, req, images: np.ndarray, what: str):
        return self._call(self._predict_bytes, predict_request_bytes(req, IMAGE_INPUT, images), what)

    def _output(self, resp, name: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            out = from_proto(resp.outputs[name])
        except TensorCodecError as exc:
            raise ServingError(f"server {self.target}: unreadable {name} ({exc})") from None
        if out.shape != shape or not np.isfinite(out).all():
            raise ServingError(
                f"server {self.target}: model {self.model} answered {name} of shape "
                f"{list(out.shape)}"
                + ("" if np.isfinite(out).all() else " holding NaN or inf")
                + f"; expected {list(shape)} finite values"
            )
        return out

    def predict_full(
        self, images: np.ndarray, ages_days: np.ndarray | None = None, tumor_stats: np.ndarray | None = None
    ) -> tuple[np.ndarray, float | None, int]:
        """(probabilities [n, len(CLASSES)], the model's refer threshold or None, model version)."""
        req, images = self._request(SIGNATURE_NAME, images, ages_days, tumor_stats)
        has_threshold = self._serving()[1]
        req.output_filter.append(PROBABILITIES_OUTPUT)
        if has_threshold:
            req.output_filter.append(REFER_THRESHOLD_OUTPUT)
        resp = self._send(req, images, "predict")
        n = len(images)
        probs = self._output(resp, PROBABILITIES_OUTPUT, (n, len(CLASSES)))
        threshold = float(self._output(resp, REFER_THRESHOLD_OUTPUT, (n,))[0]) if has_threshold else None
        return probs, threshold, resp.model_spec.version.value

    def predict(
        self, images: np.ndarray, ages_days: np.ndarray | None = None, tumor_stats: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """(probabilities float32 [n, len(CLASSES)] in CLASSES order, model version) for images
        [n, *IMAGE_SHAPE]; unknown ages (None, NaN) get the contract's fill; `tumor_stats`
        (`preprocess.tumor_stats`) for a model that takes them."""
        probs, _, version = self.predict_full(images, ages_days, tumor_stats)
        return probs, version

    def explain(
        self, images: np.ndarray, ages_days: np.ndarray | None = None, tumor_stats: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [n, 3], attribution maps [n, H, W, len(VIEWS)] in [0, 1]) from the `explain` signature,
        one row per request (servers cap explain rows: each costs tens of Predicts)."""
        if not self.can_explain():
            raise ServingError(
                f"server {self.target}: model {self.model} has no '{EXPLAIN_SIGNATURE}' signature; "
                "export it again with this version of radpath"
            )
        images = np.asarray(images, np.float32)
        ages = None if ages_days is None else fill_ages(ages_days, len(images))
        stats = stats_rows(tumor_stats, len(images)) if self.wants_tumor_stats() else None
        probs, maps = [], []
        for i in range(len(images)):
            req, row = self._request(
                EXPLAIN_SIGNATURE,
                images[i : i + 1],
                None if ages is None else ages[i : i + 1],
                None if stats is None else stats[i : i + 1],
            )
            resp = self._send(req, row, "explain")
            probs.append(self._output(resp, PROBABILITIES_OUTPUT, (1, len(CLASSES))))
            maps.append(self._output(resp, ATTRIBUTION_OUTPUT, (1, *images.shape[1:3], len(VIEWS))))
        if not probs:
            raise InvalidInputError("explain needs at least one image")
        return np.concatenate(probs), np.concatenate(maps)

    # -- the product
    def classify_case(self, case: Case, tta: bool = False) -> Classification:
        """Classify an already loaded case (see `classify`)."""
        t0 = time.perf_counter()
        tumor = find_tumor(case)
        if tta:  # the contract's views, the same as training's test-time averaging
            x = tta_views(model_inputs(case, TTA_OFFSETS, tumor.index))
        else:
            x = model_input(case, tumor.index)[None]
        x = round_input(x)  # the precision the model was trained and evaluated at (contract.model_io)
        warnings = case_warnings(case)
        t1 = time.perf_counter()
        probs, threshold, version = self.predict_full(
            x,
            None if case.age_days is None else np.full(len(x), case.age_days),
            tumor_stats(case, tumor) if self.wants_tumor_stats() else None,
        )
        t2 = time.perf_counter()
        p = probs.mean(axis=0)
        probabilities = {c: float(v) for c, v in zip(CLASSES, p)}
        return Classification(
            case.case_id,
            CLASSES[int(p.argmax())],
            probabilities,
            tumor.index,
            tumor.found,
            self.model,
            version,
            {"preprocess": round(t1 - t0, 4), "inference": round(t2 - t1, 4)},
            warnings,
            age_used=case.age_days is not None and self.wants_age(),
            refer_threshold=threshold,
            refer_reasons=refer_reasons(probabilities, threshold, warnings),
        )

    def classify(
        self,
        source: str | Path | Mapping[str, str | Path],
        age_days: float | None = None,
        tta: bool = False,
        case_id: str | None = None,
    ) -> Classification:
        """Load a case (folder or the four files), preprocess, ask the server; age is optional.
        `case_id` names the case (default: the folder name, or the FLAIR file name minus `_flair`)."""
        t0 = time.perf_counter()
        case = load_case(source, case_id=case_id, age_days=age_days)
        load_s = time.perf_counter() - t0
        result = self.classify_case(case, tta)
        result.timings["load"] = round(load_s, 4)
        return result
