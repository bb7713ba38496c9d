"""The JSON API (`/api/...`): a bearer token from POST /api/token, or the browser's session plus the
X-CSRF-Token header. `public` holds the token route; `router` everything else, behind
`deps.current_session`. The same functions as the pages do the work (`case_ops`, `login`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from radpath.contract.model_io import CHANNELS

from . import auth, jobs
from .case_ops import accept_upload, remove, result_json
from .deps import OwnedCase, Session, client_of, current_session, engine_of, settings_of
from .login import log_in

public = APIRouter(prefix="/api")
router = APIRouter(prefix="/api", dependencies=[Depends(current_session)])

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": list(CHANNELS),
                    "properties": {
                        **{q: {"type": "string", "format": "binary"} for q in CHANNELS},
                        "age_days": {"type": "number"},
                    },
                }
            }
        },
    }
}


@public.post("/token", tags=["auth"], summary="Exchange user name + password for a bearer token")
async def api_token(request: Request, body: dict) -> dict:
    token = await log_in(request, str(body.get("username", "")), str(body.get("password", "")), "api")
    idle = settings_of(request).session_idle_seconds
    return {"token": token, "token_type": "bearer", "expires_in_idle_seconds": idle}


@router.get("/cases", tags=["cases"], summary="The caller's cases, newest first")
async def api_list(request: Request, s: Session) -> list[dict]:
    cases = await asyncio.to_thread(jobs.list_for, engine_of(request), s.user.id)
    return [result_json(c) for c in cases]


@router.post(
    "/cases",
    tags=["cases"],
    status_code=202,
    summary="Upload the four sequences (multipart: flair, t1, t1ce, t2, optional age_days); queued",
    openapi_extra=UPLOAD_SCHEMA,
)
async def api_upload(request: Request, s: Session) -> Response:
    case_id = await accept_upload(request, s)
    url = f"/api/cases/{case_id}"
    return JSONResponse({"id": case_id, "state": "queued", "url": url}, 202, headers={"Location": url})


@router.get("/cases/{case_id}", tags=["cases"], summary="State and, when done, the result of one case")
async def api_case(case: OwnedCase) -> dict:
    return result_json(case)


@router.delete("/cases/{case_id}", tags=["cases"], status_code=204, summary="Delete a case (the audit record stays)")
async def api_delete(request: Request, case: OwnedCase, s: Session) -> Response:
    await asyncio.to_thread(remove, engine_of(request), settings_of(request), case["id"], s, client_of(request))
    return Response(status_code=204)


@router.post("/logout", tags=["auth"], status_code=204, summary="End this token's or cookie's session")
async def api_logout(request: Request, s: Session) -> Response:
    await asyncio.to_thread(auth.end_session, engine_of(request), s.token_hash)
    return Response(status_code=204)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict:
    return request.app.openapi()
