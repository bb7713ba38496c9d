"""What every request goes through before a route: a body limit, the Origin check of writes, and the
security headers (CSP without 'unsafe-inline': no inline scripts or styles anywhere in the site)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response

from .deps import SAFE_METHODS, UPLOAD_PATHS
from .views import error_response

MAX_FORM_BYTES = 64 * 1024
"""Every request but an upload is a small form or JSON body (uploads are capped while streaming)."""
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
ORIGIN_MESSAGE = "this form was sent from another site (Origin check); reload the page and try again"


def same_origin(request: Request) -> bool:
    """Browsers send Origin on POST: it must be this site (a second CSRF defence besides the token).
    No Origin (not a browser, or an old one): the CSRF token still applies."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    declared = request.headers.get("content-length", "")
    if request.url.path not in UPLOAD_PATHS and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        response = error_response(request, 413, f"request body too large (limit {MAX_FORM_BYTES} bytes here)")
    elif request.method not in SAFE_METHODS and not same_origin(request):
        response = error_response(request, 403, ORIGIN_MESSAGE)
    else:
        response = await call_next(request)
    add_security_headers(request, response)
    return response


def add_security_headers(request: Request, response: Response) -> None:
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


def install(app: FastAPI) -> None:
    app.middleware("http")(guard)
