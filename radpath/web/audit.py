"""Append-only audit records: who did what to which case, when, and how it ended.

Never passwords, never image data: `detail` is a short reason written by our code. The database
refuses UPDATE and DELETE on the table (see `db`), so deleting a case keeps its records.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

from .db import audit_log

log = logging.getLogger(__name__)


def record(
    engine: sa.Engine,
    action: str,
    outcome: str,
    username: str | None = None,
    case_id: str | None = None,
    detail: str | None = None,
    client: str | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                at=time.time(),
                username=username,
                action=action,
                case_id=case_id,
                outcome=outcome,
                detail=(detail or None) and detail[:500],
                client=client,
            )
        )


def entries(engine: sa.Engine, limit: int = 1000) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]
