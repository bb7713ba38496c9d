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

from radpath.contract.errors import RadPathError

from .db import cases
from .safe_text import visible_text

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


def enqueue(
    engine: sa.Engine,
    case_id: str,
    owner_id: int,
    original_names: dict,
    age_days: float | None,
    max_queued: int | None = None,
) -> None:
    """Queue one case; with `max_queued`, QueueFullError when its owner already has that many unfinished."""
    with engine.begin() as conn:
        if max_queued is not None:
            _refuse_when_full(_unfinished(conn, owner_id), max_queued)
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


class QueueFullError(RadPathError):
    """The user already has `max_queued_per_user` cases waiting or running (HTTP 429)."""


def _unfinished(conn, owner_id: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(cases)
            .where(cases.c.owner_id == owner_id, cases.c.state.in_(("queued", "running")))
        ).scalar_one()
    )


def _refuse_when_full(n: int, cap: int) -> None:
    if n >= cap:
        raise QueueFullError(
            f"you already have {n} cases waiting or being classified (at most {cap} per user, so that "
            "everyone's cases move); upload this one when some of them are done"
        )


def check_capacity(engine: sa.Engine, owner_id: int, cap: int) -> None:
    """QueueFullError when the user may not queue another case now: checked before the upload is
    read (no point receiving it), and again by `enqueue`."""
    with engine.connect() as conn:
        _refuse_when_full(_unfinished(conn, owner_id), cap)


def _fair_order(now: float):
    """(takeable, the takeable jobs in fair order). Users take turns: first those with the fewest
    cases running now, then the one served longest ago (never served first), then oldest case
    first. One user's twelve queued cases do not hold back another user's one, with one worker or
    many."""
    takeable = sa.or_(cases.c.state == "queued", sa.and_(cases.c.state == "running", cases.c.lease_expires < now))
    live = sa.and_(cases.c.state == "running", cases.c.lease_expires >= now)
    per_owner = (
        sa.select(
            cases.c.owner_id,
            sa.func.sum(sa.case((live, 1), else_=0)).label("running"),
            sa.func.coalesce(sa.func.max(cases.c.started_at), 0.0).label("served"),
        )
        .group_by(cases.c.owner_id)
        .subquery()
    )
    order = (
        sa.select(cases.c.id, cases.c.attempts, cases.c.age_days)
        .select_from(cases.join(per_owner, per_owner.c.owner_id == cases.c.owner_id))
        .where(takeable)
        .order_by(per_owner.c.running, per_owner.c.served, cases.c.created_at, cases.c.id)
    )
    return takeable, order


def claim(engine: sa.Engine, owner: str, lease_seconds: float, max_attempts: int) -> Claim | None:
    """Take the next job in fair order (see `_fair_order`), queued or with an expired lease; None when
    there is nothing to do."""
    now = time.time()
    takeable, order = _fair_order(now)
    with engine.connect() as conn:
        candidates = conn.execute(order.limit(8)).all()
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
                        note=None,
                        reason=f"the worker stopped {row.attempts} times while classifying this "
                        "case (lease expired); upload it again or ask IT to check the workers",
                    )
                )
                if done.rowcount:
                    log.warning("case %s failed: %d expired leases", row.id, row.attempts)
                continue
            retried = row.attempts > 0
            got = conn.execute(
                cases.update()
                .where(cases.c.id == row.id, cases.c.attempts == row.attempts, takeable)
                .values(
                    state="running",
                    attempts=row.attempts + 1,
                    lease_owner=owner,
                    lease_expires=now + lease_seconds,
                    started_at=now,
                    note=RETRY_NOTE.format(attempt=row.attempts + 1, of=max_attempts) if retried else None,
                )
            )
            if got.rowcount == 1:
                return Claim(row.id, owner, row.attempts + 1, row.age_days)
    return None


RETRY_NOTE = (
    "the worker classifying this case stopped before it finished; the case is being retried (attempt {attempt} of {of})"
)
WAITING_NOTE = "waiting for the model server"


def set_note(engine: sa.Engine, job: Claim, note: str | None) -> bool:
    """Say on the case's page what is happening (e.g. waiting for the model server); False if not ours."""
    with engine.begin() as conn:
        return conn.execute(cases.update().where(*_mine(job)).values(note=note)).rowcount == 1


def release(engine: sa.Engine, job: Claim, note: str | None = None) -> bool:
    """Put our running job back in the queue, as if never tried (a worker stopping on SIGTERM
    before the case was done): no attempt is used up, another worker takes it at once."""
    with engine.begin() as conn:
        r = conn.execute(
            cases.update()
            .where(*_mine(job))
            .values(state="queued", attempts=job.attempt - 1, lease_owner=None, lease_expires=None, note=note)
        )
        return r.rowcount == 1


def status_line(engine: sa.Engine, case: dict, now: float | None = None) -> str | None:
    """What to tell the user about an unfinished case beyond its state (None: nothing to add)."""
    if case["state"] not in ("queued", "running"):
        return None
    now = time.time() if now is None else now
    if case["state"] == "running" and case.get("lease_expires") is not None and case["lease_expires"] < now:
        return "the worker classifying this case stopped; the case will be retried shortly"
    if case.get("note"):
        return case["note"]
    with engine.connect() as conn:  # cases wait behind one that waits for the model server
        waiting = conn.execute(
            sa.select(cases.c.id)
            .where(cases.c.state == "running", cases.c.note.like(WAITING_NOTE + "%"), cases.c.lease_expires >= now)
            .limit(1)
        ).first()
    return f"{WAITING_NOTE} (it is not answering); your case is kept and will be classified" if waiting else None


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
    values = dict(finished_at=time.time(), lease_owner=None, lease_expires=None, note=None)
    if reason is None:
        values.update(state="succeeded", result=json.dumps(result))
    else:
        values.update(state="failed", reason=reason[:2000])
    with engine.begin() as conn:
        return conn.execute(cases.update().where(*_mine(job)).values(**values)).rowcount == 1


def get(engine: sa.Engine, case_id: str, owner_id: int) -> dict | None:
    """The case if it exists AND belongs to `owner_id` (anything else looks the same: None -> 404),
    with `status`: what to tell the user beyond its state (`status_line`)."""
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(cases).where(cases.c.id == case_id, cases.c.owner_id == owner_id)).mappings().first()
        )
    if row is None:
        return None
    case = _public(row)
    case["status"] = status_line(engine, case)
    return case


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
    d["original_names"] = {k: visible_text(v) for k, v in json.loads(d["original_names"] or "{}").items()}
    d["result"] = json.loads(d["result"]) if d["result"] else None
    return d
