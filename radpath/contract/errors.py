"""Specific, user-facing errors, and the one table that says how each is answered.

Every message names the file (or case, or request) and says what was expected and what was found,
so the person can fix the input without reading a traceback. `ERROR_STATUS` maps each error class
to its gRPC status code, HTTP status and CLI exit code; the built-in server's gRPC and REST front
ends and the web app answer from it (`status_of`), so one error is one code everywhere:

| error                                         | gRPC               | HTTP | exit |
|-----------------------------------------------|--------------------|------|------|
| InvalidArgument, CaseError, CohortError,      | INVALID_ARGUMENT   | 400  | 1    |
| LabelsError, InvalidInputError, RadPathError  |                    |      |      |
| NotFound, ModelNotFoundError                  | NOT_FOUND          | 404  | 1    |
| RequestTimeout (the client was too slow)      | DEADLINE_EXCEEDED  | 408  | 1    |
| TooLarge (over the message/body limit)        | RESOURCE_EXHAUSTED | 413  | 1    |
| Overloaded (a per-client or explain cap)      | RESOURCE_EXHAUSTED | 429  | 1    |
| ModelFailure; anything else (a bug)           | INTERNAL           | 500  | 1    |
| Unimplemented                                 | UNIMPLEMENTED      | 501  | 1    |
| Unavailable, ServerUnavailableError           | UNAVAILABLE        | 503  | 1    |
| ServingError (another model-server failure)   | UNKNOWN            | 502  | 1    |
| DeadlineError (the model server was too slow) | DEADLINE_EXCEEDED  | 504  | 1    |

gRPC codes are names of `grpc.StatusCode` (this layer imports no gRPC). Exit codes other than 1 are
outcomes, not errors: `EXIT_CASES_FAILED`, `EXIT_INTERRUPTED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RadPathError(Exception):
    """Base of every error caused by the user's input (not by a bug)."""


class CaseError(RadPathError):
    """A case (one patient's four sequences) is missing, unreadable or inconsistent."""

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class CohortError(RadPathError):
    """A cohort folder or its labels CSV does not follow the CPM-RadPath layout."""


class LabelsError(RadPathError):
    """A labels or predictions CSV is malformed (unknown class, duplicate or missing ID, ...)."""


# ---------------------------------------------------------------- a request the model server refuses
class InvalidArgument(RadPathError):
    """A bad request tensor or body (wrong name, dtype, shape, batch, non-finite values, bad JSON)."""


class NotFound(RadPathError):
    """An unknown model, version or path."""


class RequestTimeout(RadPathError):
    """The client did not send its request line, headers or body in time."""


class TooLarge(RadPathError):
    """A request over the message or body size limit."""


class Overloaded(RadPathError):
    """A limit on one client or one kind of work was reached (connections per client, the explain
    queue); retry later. Distinct from Unavailable: the server as a whole is up."""


class Unavailable(RadPathError):
    """The server cannot take the request now (the batch queue is full, no version loaded yet)."""


class ModelFailure(RadPathError):
    """The model itself misbehaved on a valid request, e.g. non-finite outputs."""


class Unimplemented(RadPathError):
    """A method the server does not implement (Classify, Regress, MultiInference)."""


# ---------------------------------------------------------------- the client's view of the model server
class ServingError(RadPathError):
    """The model server could not answer (base of the client's errors below)."""


class ServerUnavailableError(ServingError):
    """The model server stayed unreachable or overloaded after the client's retries."""


class ModelNotFoundError(ServingError):
    """The model server does not serve the model or version asked for."""


class InvalidInputError(ServingError):
    """The model server (or the client's own check) refused the input."""


class DeadlineError(ServingError):
    """The model server did not answer within the client's timeout."""


EXIT_ERROR = 1
"""Exit code of every command for an error; the line on stderr says which."""
EXIT_CASES_FAILED = 3
"""`classify-cohort`: the run finished but at least one case failed (a Kubernetes shard whose cases
failed must not "succeed")."""
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ErrorStatus:
    grpc: str
    """Name of the `grpc.StatusCode` member."""
    http: int
    exit: int = EXIT_ERROR


INTERNAL = ErrorStatus("INTERNAL", 500)
"""What an error not in the table (a bug) is answered with."""

ERROR_STATUS: dict[type[BaseException], ErrorStatus] = {
    InvalidArgument: ErrorStatus("INVALID_ARGUMENT", 400),
    NotFound: ErrorStatus("NOT_FOUND", 404),
    RequestTimeout: ErrorStatus("DEADLINE_EXCEEDED", 408),
    TooLarge: ErrorStatus("RESOURCE_EXHAUSTED", 413),
    Overloaded: ErrorStatus("RESOURCE_EXHAUSTED", 429),
    Unavailable: ErrorStatus("UNAVAILABLE", 503),
    ModelFailure: INTERNAL,
    Unimplemented: ErrorStatus("UNIMPLEMENTED", 501),
    ServerUnavailableError: ErrorStatus("UNAVAILABLE", 503),
    ModelNotFoundError: ErrorStatus("NOT_FOUND", 404),
    InvalidInputError: ErrorStatus("INVALID_ARGUMENT", 400),
    DeadlineError: ErrorStatus("DEADLINE_EXCEEDED", 504),
    ServingError: ErrorStatus("UNKNOWN", 502),
    RadPathError: ErrorStatus("INVALID_ARGUMENT", 400),
}
"""Error class -> how every front end answers it; `status_of` picks the most specific class."""


def status_of(exc: BaseException) -> ErrorStatus:
    """The table's entry for `exc`'s most specific class in it (INTERNAL for anything else: a bug)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return INTERNAL


def public_message(exc: BaseException) -> str:
    """The one line a front end sends for `exc`: our own message for our errors; for anything else
    (a bug) only its class name, never internals (the front end logs the traceback)."""
    if isinstance(exc, RadPathError):
        return str(exc)
    return f"internal error ({type(exc).__name__})"
