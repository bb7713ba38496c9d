"""Rendering: the Jinja2 templates (autoescape on), a page with the user's session, and errors as an
HTML page or JSON `detail` depending on who asked."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates

from radpath.contract.model_io import CHANNELS, CLASS_NAMES, CLASSES

from .result_view import without_case_id
from .settings import TEMPLATE_DIR

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))  # autoescape on for .html
templates.env.globals.update(classes=CLASSES, class_names=CLASS_NAMES, sequences=CHANNELS)
templates.env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t or 0))
templates.env.filters["without_case_id"] = lambda text: without_case_id(str(text or ""))


def page(request: Request, name: str, s: Any, status: int = 200, **ctx: Any) -> Response:
    """Template `name` with the logged-in user (and the CSRF token for its forms) when `s` is a session."""
    return templates.TemplateResponse(
        request, name, {"user": s.user if s else None, "csrf": s.csrf if s else None, **ctx}, status_code=status
    )


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": message}, status, headers=headers)
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "user": None}, status_code=status, headers=headers
    )
