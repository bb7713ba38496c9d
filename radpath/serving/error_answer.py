"""What both front ends of the built-in server answer for an error: the status from the one table
(`contract.errors.status_of`) and a one-line message; a bug's traceback goes to the log only."""

from __future__ import annotations

import logging

from radpath.contract.errors import ErrorStatus, RadPathError, public_message, status_of

log = logging.getLogger("radpath.serving")


def error_answer(exc: BaseException, api: str) -> tuple[ErrorStatus, str]:
    """(status, message) for `exc` raised while serving `api`; logs the traceback of a bug."""
    if not isinstance(exc, RadPathError):
        log.error("%s request failed", api, exc_info=exc)
    return status_of(exc), public_message(exc)
