"""The web app assembled: settings and database on `app.state`, middleware, error pages, routers.

Where things are: `deps` (the one gate: current session, owned case), `middleware` (body limit,
Origin check, security headers), `login` (the one login helper), `pages` and `api` (thin routers
over `case_ops`), `views` (templates and error rendering). Classification never runs in a request:
uploads are checked and queued; workers (`worker`) do the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api, middleware, pages, uploads
from .db import engine_for
from .demo_volume import ensure_demo_volume
from .deps import SAFE_METHODS, SESSION_COOKIE, Problem
from .login import login_page
from .settings import STATIC_DIR, Settings
from .views import error_response, wants_json

__all__ = ["SESSION_COOKIE", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    app.state.settings, app.state.engine = settings, engine_for(settings.db_url)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    middleware.install(app)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(uploads.UploadError, upload_error)
    for router in (pages.public, pages.router, api.public, api.router):
        app.include_router(router)
    return app


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, Problem):
        message = str(exc.detail)
    else:
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    headers = getattr(exc, "headers", None)
    if exc.status_code == 401 and not wants_json(request):
        # the login form right here; after logging in the browser comes back to the page it asked for
        asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = login_page(request, 401, message, asked if request.method in SAFE_METHODS else None)
        response.headers.update(headers or {})
        return response
    return error_response(request, exc.status_code, message, headers)


async def invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
    return error_response(request, 422, "invalid request: " + "; ".join(parts))


async def upload_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, uploads.UploadError)
    return error_response(request, exc.status, str(exc))
