"""The job queue: one row per case in `cases`, claimed by workers under a lease.

States: queued -> running (lease_owner, lease_expires) -> succeeded (result) | failed (reason).
A worker renews its lease while it works. A job whose lease expired (its worker was killed) is
claimed again, up to `max_attempts` times, then failed with a reason. Every transition is a
compare-and-set UPDATE (same attempt number, same lease owner), so two workers can never both
finish one job: exactly one result per job, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from .db import cases

log = logging.getLogger(__name__)

STATES = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True)
class Claim:
    case_id: str
    owner: str
    attempt: int
    age_days: float | None


def new_case_id() -> str:
    """Unguessable (128 bits), so ids reveal nothing; access is still checked per owner."""
    return secrets.token_hex(16)


def enqueue(engine: sa.Engine, case_id: str, owner_id: int, original_names: dict, age_days: float | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            cases.insert().values(
                id=case_id,
                owner_id=owner_id,
                created_at=time.time(),
                state="queued",
                attempts=0,
                age_days=age_days,
                original_names=json.dumps(original_names),
            )
        )


def claim(engine: sa.Engine, owner: str, lease_seconds: float, max_attempts: int) -> Claim | None:
    """Take the oldest queued job or one whose lease expired; None when there is nothing to do."""
    now = time.time()
    takeable = sa.or_(cases.c.state == "queued", sa.and_(cases.c.state == "running", cases.c.lease_expires < now))
    with engine.connect() as conn:
        candidates = conn.execute(
            sa.select(cases.c.id, cases.c.attempts, cases.c.age_days)
            .where(takeable)
            .order_by(cases.c.created_at)
            .limit(8)
        ).all()
    for row in candidates:
        with engine.begin() as conn:
            if row.attempts >= max_attempts:  # its workers kept dying: fail it instead of looping
                done = conn.execute(
                    cases.update()
                    .where(cases.c.id == row.id, cases.c.attempts == row.attempts, takeable)
                    .values(
                        state="failed",
                        lease_owner=None,
                        lease_expires=None,
                        finished_at=now,
                        reason=f"the worker stopped {row.attempts} times while classifying this "
                        "case (lease expired); upload it again or ask IT to check the workers",
                    )
                )
                if done.rowcount:
                    log.warning("case %s failed: %d expired leases", row.id, row.attempts)
                continue
            got = conn.execute(
                cases.update()
                .where(cases.c.id == row.id, cases.c.attempts == row.attempts, takeable)
                .values(
                    state="running", attempts=row.attempts + 1, lease_owner=owner, lease_expires=now + lease_seconds
                )
            )
            if got.rowcount == 1:
                return Claim(row.id, owner, row.attempts + 1, row.age_days)
    return None


def renew(engine: sa.Engine, job: Claim, lease_seconds: float) -> bool:
    """Extend the lease; False if the job is no longer ours (expired and taken over, or deleted)."""
    with engine.begin() as conn:
        r = conn.execute(cases.update().where(*_mine(job)).values(lease_expires=time.time() + lease_seconds))
        return r.rowcount == 1


def _mine(job: Claim):
    return (
        cases.c.id == job.case_id,
        cases.c.state == "running",
        cases.c.lease_owner == job.owner,
        cases.c.attempts == job.attempt,
    )


def finish(engine: sa.Engine, job: Claim, result: dict | None = None, reason: str | None = None) -> bool:
    """Store the one result (or the failure reason); False if another worker or a delete got there first."""
    values = dict(finished_at=time.time(), lease_owner=None, lease_expires=None)
    if reason is None:
        values.update(state="succeeded", result=json.dumps(result))
    else:
        values.update(state="failed", reason=reason[:2000])
    with engine.begin() as conn:
        return conn.execute(cases.update().where(*_mine(job)).values(**values)).rowcount == 1


def get(engine: sa.Engine, case_id: str, owner_id: int) -> dict | None:
    """The case if it exists AND belongs to `owner_id` (anything else looks the same: None -> 404)."""
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(cases).where(cases.c.id == case_id, cases.c.owner_id == owner_id)).mappings().first()
        )
    return _public(row) if row else None


def list_for(engine: sa.Engine, owner_id: int, limit: int = 500) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cases).where(cases.c.owner_id == owner_id).order_by(cases.c.created_at.desc()).limit(limit)
        ).mappings()
        return [_public(r) for r in rows]


def delete(engine: sa.Engine, case_id: str, owner_id: int) -> bool:
    with engine.begin() as conn:
        return conn.execute(cases.delete().where(cases.c.id == case_id, cases.c.owner_id == owner_id)).rowcount == 1


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(cases.c.state, sa.func.count()).group_by(cases.c.state)).all()
    return {s: 0 for s in STATES} | {r[0]: int(r[1]) for r in rows}


def _public(row) -> dict:
    d = dict(row)
    d["original_names"] = json.loads(d["original_names"] or "{}")
    d["result"] = json.loads(d["result"]) if d["result"] else None
    return d
