"""The HTML pages. `public`: home, login, health, NiiVue and the demo brain; `router`: everything
else, behind `deps.current_session` (declared once, for every route it holds)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from radpath.contract.model_io import CHANNELS

from . import audit, auth, jobs, uploads
from .case_ops import accept_upload, case_file, remove, result_json
from .deps import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    OwnedCase,
    Problem,
    Session,
    client_of,
    current_session,
    engine_of,
    optional_session,
    settings_of,
)
from .login import log_in, login_page, remember_device, safe_next, set_cookie
from .model_card import render_card, takes_age
from .result_view import present
from .settings import NIIVUE_JS
from .views import page

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(current_session)])


# ---------------------------------------------------------------- public
@public.get("/", response_class=HTMLResponse)
async def home(request: Request, s: auth.Session | None = Depends(optional_session)) -> Response:
    return page(request, "home.html", s)


@public.get("/healthz")
async def healthz(request: Request) -> Response:
    try:
        await asyncio.to_thread(jobs.counts, engine_of(request))
    except Exception as exc:
        return JSONResponse({"status": "database unavailable", "error": type(exc).__name__}, 503)
    return JSONResponse({"status": "ok"})


@public.get("/vendor/niivue.js")
async def niivue() -> Response:
    if not NIIVUE_JS.is_file():
        raise Problem(404, "NiiVue is not installed: run scripts/setup (npm ci in radpath/web)")
    return FileResponse(NIIVUE_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})


@public.get("/demo/brain.nii.gz")
async def demo_brain(request: Request) -> Response:
    return FileResponse(settings_of(request).demo_dir() / "brain.nii.gz", media_type="application/octet-stream")


@public.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return login_page(request, next_path=request.query_params.get("next"))


@public.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    if not auth.csrf_ok(request.cookies.get(LOGIN_COOKIE), _text(form.get("csrf_token"))):
        raise Problem(
            403, "the login form's security token is missing or stale (CSRF check); reload the page and try again"
        )
    next_path = safe_next(form.get("next"))
    try:
        token = await log_in(request, _text(form.get("username")), _text(form.get("password")), "web")
    except Problem as exc:
        response = login_page(request, exc.status_code, str(exc.detail), next_path)
        response.headers.update(exc.headers or {})
        return response
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # never carry a session across a login (fixation)
        await asyncio.to_thread(auth.end_session_token, engine_of(request), old)
    response = RedirectResponse(next_path or "/cases", 303)
    set_cookie(response, request, SESSION_COOKIE, token)
    remember_device(response, request, _text(form.get("username")))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- behind the session
@router.post("/logout")
async def logout(request: Request, s: Session) -> Response:
    engine = engine_of(request)
    await asyncio.to_thread(auth.end_session, engine, s.token_hash)
    await asyncio.to_thread(audit.record, engine, "logout", "ok", username=s.user.username, client=client_of(request))
    response = RedirectResponse("/", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _upload_page(request: Request, s: auth.Session, status: int = 200, error: str | None = None) -> Response:
    """The upload form; it asks for age only when the served model takes it (None: not known)."""
    settings = settings_of(request)
    age = await asyncio.to_thread(takes_age, settings)
    return page(
        request, "upload.html", s, status, error=error, max_mb=settings.max_upload_bytes // 10**6, takes_age=age
    )


@router.get("/upload", response_class=HTMLResponse)
async def upload_form(request: Request, s: Session) -> Response:
    return await _upload_page(request, s)


@router.post("/upload")
async def upload(request: Request, s: Session) -> Response:
    try:
        case_id = await accept_upload(request, s)
    except uploads.UploadError as exc:
        return await _upload_page(request, s, exc.status, str(exc))
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/cases", response_class=HTMLResponse)
async def history(request: Request, s: Session) -> Response:
    cases = await asyncio.to_thread(jobs.list_for, engine_of(request), s.user.id)
    return page(request, "cases.html", s, cases=[{**c, "view": present(c["result"])} for c in cases])


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def result_page(request: Request, case: OwnedCase, s: Session) -> Response:
    engine, settings = engine_of(request), settings_of(request)
    await asyncio.to_thread(
        audit.record,
        engine,
        "view",
        case["state"],
        username=s.user.username,
        case_id=case["id"],
        client=client_of(request),
    )
    flair = None
    if case["state"] == "succeeded":
        flair = (await asyncio.to_thread(case_file, settings, case, "flair-volume")).name
    r = case["result"]
    card = render_card((r.get("model_info") or {}).get("card_markdown")) if r else None
    return page(request, "result.html", s, case=case, r=r, v=present(r), card_html=card, flair_name=flair)


@router.get("/cases/{case_id}/images/{seq}.png")
async def slice_png(request: Request, case: OwnedCase, seq: str) -> Response:
    if seq not in (*CHANNELS, "explanation", "prepare_qc"):  # prepare_qc: a clinical upload's QC picture
        raise Problem(404, "no such image")
    path = await asyncio.to_thread(case_file, settings_of(request), case, seq)
    return FileResponse(path, media_type="image/png")


@router.get("/cases/{case_id}/volumes/{name}")
async def volume(request: Request, case: OwnedCase, name: str) -> Response:
    kind = "mask" if name == "mask.nii.gz" else "flair-volume" if name.startswith("flair.nii") else ""
    path = await asyncio.to_thread(case_file, settings_of(request), case, kind)
    if path.name != name:
        raise Problem(404, "no such volume")
    return FileResponse(path, media_type="application/octet-stream")


@router.get("/cases/{case_id}/result.json")
async def download(request: Request, case: OwnedCase, s: Session) -> Response:
    await asyncio.to_thread(
        audit.record,
        engine_of(request),
        "download",
        "ok",
        username=s.user.username,
        case_id=case["id"],
        client=client_of(request),
    )
    return Response(
        json.dumps(result_json(case), indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="radpath-{case["id"]}.json"'},
    )


@router.get("/cases/{case_id}/delete", response_class=HTMLResponse)
async def confirm_delete(request: Request, case: OwnedCase, s: Session) -> Response:
    """Deleting asks first: a page with the one button that does it (no script needed)."""
    return page(request, "delete.html", s, case=case)


@router.post("/cases/{case_id}/delete")
async def delete_case(request: Request, case: OwnedCase, s: Session) -> Response:
    await asyncio.to_thread(remove, engine_of(request), settings_of(request), case["id"], s, client_of(request))
    return RedirectResponse("/cases", 303)
