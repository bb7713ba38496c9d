"""One way in: the login helper behind both `/login` (browser form, cookie) and `/api/token` (bearer).

Credentials are checked by `auth.authenticate` (argon2, throttled) in a thread, every outcome is
audited, and a successful login always creates a new session. Also here: the login page itself,
with its pre-login CSRF cookie and the validated return path (`safe_next`).
"""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from . import audit, auth
from .deps import LOGIN_COOKIE, Problem, client_of, engine_of, settings_of
from .views import page

MAX_NEXT = 512
DEVICE_COOKIE = "radpath_device"
"""Marks of the accounts this browser logged in to: such a browser is not slowed by failures that
other clients cause on the account (auth's account-wide limit)."""
DEVICE_COOKIE_DAYS = 180


async def log_in(request: Request, username: str, password: str, kind: str) -> str:
    """A new session token of `kind` ("web" or "api") for good credentials; Problem 401 or 429 otherwise."""
    engine, settings = engine_of(request), settings_of(request)
    username, password = username[:320], password[:1024]
    detail = "api" if kind == "api" else None
    who = {"username": username[:64], "detail": detail, "client": client_of(request)}
    try:
        user = await asyncio.to_thread(
            auth.authenticate, engine, settings, username, password, who["client"], request.cookies.get(DEVICE_COOKIE)
        )
    except auth.ThrottledError as exc:
        await asyncio.to_thread(audit.record, engine, "login", "throttled", **who)
        raise Problem(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except auth.AuthError as exc:
        await asyncio.to_thread(audit.record, engine, "login", "failed", **who)
        raise Problem(401, str(exc)) from None
    token, _ = await asyncio.to_thread(auth.create_session, engine, user, kind)
    await asyncio.to_thread(audit.record, engine, "login", "ok", **{**who, "username": user.username})
    return token


def safe_next(value: object) -> str | None:
    """`value` if it is a path on this site (`/cases/...`), else None: no open redirect after login.

    Refused: anything with a scheme or host (`https://x`, `//x`), backslashes (browsers read `/\\x` as
    `//x`), and control characters or spaces (browsers drop tabs and newlines, so `/\\t/x` becomes `//x`).
    """
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_NEXT:
        return None
    if value.startswith("//") or "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def login_page(request: Request, status: int = 200, error: str | None = None, next_path: str | None = None) -> Response:
    """The login form with a fresh pre-login CSRF token (cookie + hidden field) and the return path."""
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", None, status, login_csrf=token, error=error, next=safe_next(next_path))
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


def remember_device(response: Response, request: Request, username: str) -> None:
    """After a successful browser login: this browser is known for `username` (see `auth`'s throttling)."""
    value = auth.remember_device(settings_of(request).secret, username, request.cookies.get(DEVICE_COOKIE))
    set_cookie(response, request, DEVICE_COOKIE, value, max_age=DEVICE_COOKIE_DAYS * 86400)


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    settings = settings_of(request)
    secure = request.url.scheme == "https" if settings.secure_cookies is None else settings.secure_cookies
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)
