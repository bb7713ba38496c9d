"""Specific, user-facing errors.

Every message names the file (or case) and says what was expected and what was found, so the person
running a cohort can fix the input without reading a traceback. The CLI turns these into one line and
exit code 1. They are raised on the client side, where cases are read: the server only ever sees
tensors, and rejects a bad one with INVALID_ARGUMENT on its own terms.
"""

from __future__ import annotations

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


EXIT_ERROR = 1
"""Exit code of every command for an error; the line on stderr says which."""
EXIT_CASES_FAILED = 3
"""`classify-cohort`: the run finished but at least one case failed (a Kubernetes shard whose cases
failed must not "succeed")."""
EXIT_INTERRUPTED = 130
