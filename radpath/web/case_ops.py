"""What the pages and the JSON API both do with a case: accept an upload, find its files, describe
it as JSON, delete it. Async functions here are called by handlers; the plain ones touch the
database or the disk and are only ever run through `asyncio.to_thread`."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import sqlalchemy as sa
from fastapi import Request

from radpath.contract.model_io import CLASS_NAMES

from . import audit, auth, jobs, study_upload, uploads
from .deps import CSRF_MESSAGE, Problem, client_of, engine_of, settings_of
from .settings import Settings
from .upload_check import check_isolated


async def accept_upload(request: Request, s: auth.Session) -> str:
    """Stream, check and queue; returns the new case id. A refusal (4xx) leaves nothing behind."""
    engine, settings = engine_of(request), settings_of(request)
    try:  # before the body is read: no point receiving a case that cannot be queued
        await asyncio.to_thread(jobs.check_capacity, engine, s.user.id, settings.max_queued_per_user)
    except jobs.QueueFullError as exc:
        await asyncio.to_thread(
            audit.record,
            engine,
            "upload",
            "refused",
            username=s.user.username,
            detail=str(exc),
            client=client_of(request),
        )
        raise uploads.UploadError(str(exc), 429) from None
    staged = await uploads.receive(request, settings)
    try:
        if s.kind == "web" and not auth.csrf_ok(
            s.csrf, staged.fields.get("csrf_token") or request.headers.get("x-csrf-token")
        ):
            raise Problem(403, CSRF_MESSAGE)
        age = uploads.parse_age(staged.fields.get("age_days"))
        async with request.app.state.check_slots:
            await asyncio.to_thread(check_isolated, staged, settings)  # decoded in a child process
        case_id = jobs.new_case_id()
        await asyncio.to_thread(uploads.commit, staged, settings, case_id)
    except BaseException as exc:
        await asyncio.to_thread(staged.discard)
        detail = str(exc.detail if isinstance(exc, Problem) else exc)
        await asyncio.to_thread(
            audit.record,
            engine,
            "upload",
            "rejected",
            username=s.user.username,
            detail=detail,
            client=client_of(request),
        )
        raise
    await asyncio.to_thread(_queue, engine, settings, case_id, s.user.id, staged.names, age)
    await asyncio.to_thread(
        audit.record, engine, "upload", "queued", username=s.user.username, case_id=case_id, client=client_of(request)
    )
    return case_id


def _queue(engine: sa.Engine, settings: Settings, case_id: str, owner_id: int, names: dict, age: float | None) -> None:
    try:
        jobs.enqueue(engine, case_id, owner_id, names, age, max_queued=settings.max_queued_per_user)
    except BaseException as exc:
        shutil.rmtree(settings.cases_dir() / case_id, ignore_errors=True)
        if isinstance(exc, jobs.QueueFullError):  # several uploads of one user at once
            raise uploads.UploadError(str(exc), 429) from None
        raise


def case_file(settings: Settings, case: dict, name: str) -> Path:
    """`flair-volume` (the uploaded FLAIR), or an artefact of the result: `mask`, a sequence's slice PNG,
    `explanation`. A 404 Problem when the case has no such file."""
    result = case.get("result") or {}
    folder = settings.cases_dir() / case["id"]
    if name == "flair-volume":
        prepared = study_upload.prepared_flair(folder)  # a clinical upload: the FLAIR on the BraTS grid
        if prepared is not None:
            return prepared
        for suffix in (".nii.gz", ".nii"):
            if (folder / "input" / f"flair{suffix}").is_file():
                return folder / "input" / f"flair{suffix}"
    elif result.get("artefacts") and name in (result.get("images") or {}):
        path = folder / result["artefacts"] / result["images"][name]
        if path.is_file():
            return path
    raise Problem(404, "no such file for this case")


def result_json(case: dict) -> dict:
    """The case as the API and the download show it (no server paths)."""
    r = dict(case["result"] or {})
    for k in ("artefacts", "images"):
        r.pop(k, None)
    if r:
        r["class_name"] = CLASS_NAMES[r["class"]]
    return {
        "id": case["id"],
        "state": case["state"],
        "created_at": case["created_at"],
        "finished_at": case["finished_at"],
        "reason": case["reason"],
        "status": case.get("status"),
        "files": case["original_names"],
        "age_days": case["age_days"],
        "result": r or None,
    }


def remove(engine: sa.Engine, settings: Settings, case_id: str, s: auth.Session, client: str) -> None:
    """Delete the case's row and files (the caller already checked ownership); the audit record stays."""
    jobs.delete(engine, case_id, s.user.id)
    shutil.rmtree(settings.cases_dir() / case_id, ignore_errors=True)
    audit.record(engine, "delete", "ok", username=s.user.username, case_id=case_id, client=client)
