"""Routes of the web app: thin handlers over `auth`, `uploads`, `jobs` and the templates.

Deny by default: every route depends on `require_session` except home, login, health and the
static files (NiiVue, our CSS/JS, the synthetic demo brain). A missing or foreign case is a 404,
whoever owns it. HTML pages and the JSON API (`/api/...`, session or bearer token) share the
handlers' logic. Classification never runs in a request: uploads are checked and queued; workers
(`worker`) do the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from radpath.preprocess import CLASSES, SEQUENCES

from . import audit, auth, jobs, uploads
from .db import engine_for
from .demo_volume import ensure_demo_volume
from .settings import NIIVUE_JS, STATIC_DIR, TEMPLATE_DIR, Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "radpath_session"
LOGIN_COOKIE = "radpath_login"
"""Pre-login CSRF token (double submit); replaced by the session at login."""
CLASS_NAMES = {
    "A": "Lower-grade astrocytoma, IDH-mutant",
    "O": "Oligodendroglioma, IDH-mutant, 1p/19q-codeleted",
    "G": "Glioblastoma, IDH-wildtype",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
UPLOAD_PATHS = {"/upload", "/api/cases"}
MAX_FORM_BYTES = 64 * 1024
"""Every request but an upload is a small form or JSON body."""
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class Problem(StarletteHTTPException):
    """An HTTP error with a message for people (HTML page or JSON `detail`)."""


def create_app(settings: Settings) -> FastAPI:
    engine = engine_for(settings.db_url)
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))  # autoescape on for .html
    templates.env.globals.update(classes=CLASSES, class_names=CLASS_NAMES, sequences=SEQUENCES)
    templates.env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t or 0))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.check_slots = asyncio.Semaphore(settings.max_concurrent_checks)
        await asyncio.to_thread(ensure_demo_volume, settings.demo_dir())
        await asyncio.to_thread(uploads.sweep_staging, settings)
        yield

    app = FastAPI(
        title="RadPath web",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="Glioma class (A/O/G) from four MRI sequences. "
        "Authenticate with POST /api/token, then send `Authorization: Bearer <token>`.",
    )
    app.state.settings, app.state.engine = settings, engine
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    # ------------------------------------------------------------ cross-cutting
    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        declared = request.headers.get("content-length", "")
        if request.url.path not in UPLOAD_PATHS and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            response = JSONResponse({"detail": f"request body too large (limit {MAX_FORM_BYTES} bytes here)"}, 413)
        else:
            response = await call_next(request)
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "same-origin"  # no-referrer would make browsers send Origin: null on our own forms
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.url.path.startswith(("/static/", "/vendor/")):
            h.setdefault("Cache-Control", "no-store")
        if request.url.scheme == "https":
            h["Strict-Transport-Security"] = "max-age=31536000"
        return response

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")

    def error_page(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": message}, status, headers=headers)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": status, "message": message, "user": None},
            status_code=status,
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = (
            exc.detail
            if isinstance(exc, Problem)
            else {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        )
        return error_page(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
        return error_page(request, 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(uploads.UploadError)
    async def upload_error(request: Request, exc: uploads.UploadError):
        return error_page(request, exc.status, str(exc))

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "?"

    def same_origin(request: Request) -> bool:
        """Browsers send Origin on POST: it must be this site (a second CSRF defence)."""
        origin = request.headers.get("origin")
        if origin is None:  # not a browser, or an old one: the CSRF token still applies
            return True
        return urlsplit(origin).netloc == request.headers.get("host", "")

    # ------------------------------------------------------------ the one gate
    async def require_session(request: Request) -> auth.Session:
        """The caller's live session (cookie or bearer token); 401 otherwise. CSRF for cookie writes."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            s = auth.lookup_session(engine, settings, header[7:].strip(), kind="api")
            if s is None:
                raise Problem(
                    401,
                    "the API token is invalid or expired; get a new one from POST /api/token",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return s
        s = auth.lookup_session(engine, settings, request.cookies.get(SESSION_COOKIE), kind="web")
        if s is None:
            raise Problem(401, "you are not logged in, or your session has ended: please log in")
        if request.method not in SAFE_METHODS:
            given = request.headers.get("x-csrf-token")
            if given is None and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                given = (await request.form()).get("csrf_token")
            # uploads carry the token inside the streamed body: checked by accept_upload after parsing
            multipart = request.url.path in UPLOAD_PATHS and request.headers.get("content-type", "").startswith(
                "multipart/form-data"
            )
            if not same_origin(request) or (not multipart and not auth.csrf_ok(s.csrf, given)):
                raise Problem(
                    403, "the form's security token is missing or stale (CSRF check); reload the page and try again"
                )
        return s

    def page(request: Request, name: str, s: auth.Session | None, status: int = 200, **ctx) -> Response:
        return templates.TemplateResponse(
            request, name, {"user": s.user if s else None, "csrf": s.csrf if s else None, **ctx}, status_code=status
        )

    # ------------------------------------------------------------ public pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request):
        s = auth.lookup_session(engine, settings, request.cookies.get(SESSION_COOKIE))
        return page(request, "home.html", s)

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        try:
            await asyncio.to_thread(jobs.counts, engine)
        except Exception as exc:
            return JSONResponse({"status": "database unavailable", "error": type(exc).__name__}, 503)
        return {"status": "ok"}

    @app.get("/vendor/niivue.js", include_in_schema=False)
    async def niivue():
        if not NIIVUE_JS.is_file():
            raise Problem(404, "NiiVue is not installed: run scripts/setup (npm ci in radpath/web)")
        return FileResponse(NIIVUE_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/demo/brain.nii.gz", include_in_schema=False)
    async def demo_brain():
        return FileResponse(settings.demo_dir() / "brain.nii.gz", media_type="application/octet-stream")

    # ------------------------------------------------------------ login / logout
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request):
        token = secrets.token_urlsafe(24)
        response = page(
            request, "login.html", None, login_csrf=token, next=_safe_next(request.query_params.get("next"))
        )
        _set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await request.form()
        username, password = str(form.get("username", ""))[:320], str(form.get("password", ""))[:1024]
        pre = request.cookies.get(LOGIN_COOKIE)
        if not same_origin(request) or not auth.csrf_ok(pre, form.get("csrf_token")):
            raise Problem(
                403, "the login form's security token is missing or stale (CSRF check); reload the page and try again"
            )
        try:
            user = await asyncio.to_thread(auth.authenticate, engine, settings, username, password)
        except auth.ThrottledError as exc:
            audit.record(engine, "login", "throttled", username=username[:64], client=client_of(request))
            return _login_again(request, 429, str(exc), {"Retry-After": str(exc.retry_after)})
        except auth.AuthError as exc:
            audit.record(engine, "login", "failed", username=username[:64], client=client_of(request))
            return _login_again(request, 401, str(exc))
        old = request.cookies.get(SESSION_COOKIE)
        if old:  # never carry a session across a login (fixation)
            auth.end_session(engine, auth._digest(old))
        token, _ = auth.create_session(engine, user)
        audit.record(engine, "login", "ok", username=user.username, client=client_of(request))
        response = RedirectResponse(_safe_next(form.get("next")) or "/cases", 303)
        _set_cookie(response, request, SESSION_COOKIE, token)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    def _login_again(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", None, status, login_csrf=token, error=message, next=None)
        _set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, s: auth.Session = Depends(require_session)):
        auth.end_session(engine, s.token_hash)
        audit.record(engine, "logout", "ok", username=s.user.username, client=client_of(request))
        response = RedirectResponse("/", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ upload
    async def accept_upload(request: Request, s: auth.Session) -> str:
        """Stream, check and queue; returns the new case id. UploadError (4xx) leaves nothing behind."""
        staged = await uploads.receive(request, settings)
        try:
            if s.kind == "web" and not auth.csrf_ok(
                s.csrf, staged.fields.get("csrf_token") or request.headers.get("x-csrf-token")
            ):
                raise Problem(
                    403, "the form's security token is missing or stale (CSRF check); reload the page and try again"
                )
            age = uploads.parse_age(staged.fields.get("age_days"))
            async with request.app.state.check_slots:
                await asyncio.to_thread(uploads.check, staged)
            case_id = jobs.new_case_id()
            uploads.commit(staged, settings, case_id)
        except BaseException as exc:
            staged.discard()
            detail = str(exc.detail if isinstance(exc, Problem) else exc)
            audit.record(
                engine, "upload", "rejected", username=s.user.username, detail=detail, client=client_of(request)
            )
            raise
        try:
            jobs.enqueue(engine, case_id, s.user.id, staged.names, age)
        except Exception:
            import shutil

            shutil.rmtree(settings.cases_dir() / case_id, ignore_errors=True)
            raise
        audit.record(engine, "upload", "queued", username=s.user.username, case_id=case_id, client=client_of(request))
        return case_id

    @app.get("/upload", response_class=HTMLResponse, include_in_schema=False)
    async def upload_form(request: Request, s: auth.Session = Depends(require_session)):
        return page(request, "upload.html", s, max_mb=settings.max_upload_bytes // 10**6)

    @app.post("/upload", include_in_schema=False)
    async def upload(request: Request, s: auth.Session = Depends(require_session)):
        try:
            case_id = await accept_upload(request, s)
        except uploads.UploadError as exc:
            return page(
                request, "upload.html", s, exc.status, error=str(exc), max_mb=settings.max_upload_bytes // 10**6
            )
        return RedirectResponse(f"/cases/{case_id}", 303)

    # ------------------------------------------------------------ cases
    def owned(case_id: str, s: auth.Session) -> dict:
        case = jobs.get(engine, case_id, s.user.id) if len(case_id) == 32 else None
        if case is None:
            raise Problem(404, "no such case (it may have been deleted)")
        return case

    def case_file(case: dict, name: str) -> Path:
        """`flair-volume` (the uploaded FLAIR), or an artefact of the result: `mask`, a sequence's slice PNG."""
        result = case.get("result") or {}
        folder = settings.cases_dir() / case["id"]
        if name == "flair-volume":
            for suffix in (".nii.gz", ".nii"):
                if (folder / "input" / f"flair{suffix}").is_file():
                    return folder / "input" / f"flair{suffix}"
        elif result.get("artefacts") and name in (result.get("images") or {}):
            path = folder / result["artefacts"] / result["images"][name]
            if path.is_file():
                return path
        raise Problem(404, "no such file for this case")

    @app.get("/cases", response_class=HTMLResponse, include_in_schema=False)
    async def history(request: Request, s: auth.Session = Depends(require_session)):
        return page(request, "cases.html", s, cases=jobs.list_for(engine, s.user.id))

    @app.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    async def result_page(request: Request, case_id: str, s: auth.Session = Depends(require_session)):
        case = owned(case_id, s)
        audit.record(
            engine, "view", case["state"], username=s.user.username, case_id=case_id, client=client_of(request)
        )
        flair = case_file(case, "flair-volume").name if case["state"] == "succeeded" else None
        return page(request, "result.html", s, case=case, r=case["result"], flair_name=flair)

    @app.get("/cases/{case_id}/images/{seq}.png", include_in_schema=False)
    async def slice_png(case_id: str, seq: str, s: auth.Session = Depends(require_session)):
        if seq not in (*SEQUENCES, "explanation"):
            raise Problem(404, "no such image")
        return FileResponse(case_file(owned(case_id, s), seq), media_type="image/png")

    @app.get("/cases/{case_id}/volumes/{name}", include_in_schema=False)
    async def volume(case_id: str, name: str, s: auth.Session = Depends(require_session)):
        case = owned(case_id, s)
        path = case_file(
            case, "mask" if name == "mask.nii.gz" else "flair-volume" if name.startswith("flair.nii") else ""
        )
        if path.name != name:
            raise Problem(404, "no such volume")
        return FileResponse(path, media_type="application/octet-stream")

    def result_json(case: dict) -> dict:
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
            "files": case["original_names"],
            "age_days": case["age_days"],
            "result": r or None,
        }

    @app.get("/cases/{case_id}/result.json", include_in_schema=False)
    async def download(request: Request, case_id: str, s: auth.Session = Depends(require_session)):
        case = owned(case_id, s)
        audit.record(engine, "download", "ok", username=s.user.username, case_id=case_id, client=client_of(request))
        return Response(
            json.dumps(result_json(case), indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="radpath-{case_id}.json"'},
        )

    def remove(case_id: str, s: auth.Session, request: Request) -> None:
        owned(case_id, s)
        import shutil

        jobs.delete(engine, case_id, s.user.id)
        shutil.rmtree(settings.cases_dir() / case_id, ignore_errors=True)
        audit.record(engine, "delete", "ok", username=s.user.username, case_id=case_id, client=client_of(request))

    @app.post("/cases/{case_id}/delete", include_in_schema=False)
    async def delete_case(request: Request, case_id: str, s: auth.Session = Depends(require_session)):
        remove(case_id, s, request)
        return RedirectResponse("/cases", 303)

    # ------------------------------------------------------------ JSON API
    @app.post("/api/token", tags=["auth"], summary="Exchange user name + password for a bearer token")
    async def api_token(request: Request, body: dict):
        username, password = str(body.get("username", ""))[:320], str(body.get("password", ""))[:1024]
        try:
            user = await asyncio.to_thread(auth.authenticate, engine, settings, username, password)
        except auth.ThrottledError as exc:
            audit.record(engine, "login", "throttled", username=username[:64], detail="api", client=client_of(request))
            raise Problem(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        except auth.AuthError as exc:
            audit.record(engine, "login", "failed", username=username[:64], detail="api", client=client_of(request))
            raise Problem(401, str(exc)) from None
        token, _ = auth.create_session(engine, user, kind="api")
        audit.record(engine, "login", "ok", username=user.username, detail="api", client=client_of(request))
        return {"token": token, "token_type": "bearer", "expires_in_idle_seconds": settings.session_idle_seconds}

    @app.get("/api/cases", tags=["cases"], summary="The caller's cases, newest first")
    async def api_list(s: auth.Session = Depends(require_session)):
        return [result_json(c) for c in jobs.list_for(engine, s.user.id)]

    @app.post(
        "/api/cases",
        tags=["cases"],
        status_code=202,
        summary="Upload the four sequences (multipart: flair, t1, t1ce, t2, optional age_days); queued",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": list(SEQUENCES),
                            "properties": {
                                **{q: {"type": "string", "format": "binary"} for q in SEQUENCES},
                                "age_days": {"type": "number"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def api_upload(request: Request, s: auth.Session = Depends(require_session)):
        case_id = await accept_upload(request, s)
        return JSONResponse(
            {"id": case_id, "state": "queued", "url": f"/api/cases/{case_id}"},
            202,
            headers={"Location": f"/api/cases/{case_id}"},
        )

    @app.get("/api/cases/{case_id}", tags=["cases"], summary="State and, when done, the result of one case")
    async def api_case(case_id: str, s: auth.Session = Depends(require_session)):
        return result_json(owned(case_id, s))

    @app.delete(
        "/api/cases/{case_id}", tags=["cases"], status_code=204, summary="Delete a case (the audit record stays)"
    )
    async def api_delete(request: Request, case_id: str, s: auth.Session = Depends(require_session)):
        remove(case_id, s, request)
        return Response(status_code=204)

    @app.post("/api/logout", tags=["auth"], status_code=204, summary="End this token's or cookie's session")
    async def api_logout(s: auth.Session = Depends(require_session)):
        auth.end_session(engine, s.token_hash)
        return Response(status_code=204)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(s: auth.Session = Depends(require_session)):
        return app.openapi()

    return app


def _safe_next(value) -> str | None:
    """Only a local path (never //host or a scheme): no open redirect after login."""
    if not value or not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value[:200]


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    settings: Settings = request.app.state.settings
    secure = request.url.scheme == "https" if settings.secure_cookies is None else settings.secure_cookies
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)
