"""The one gate: the dependency that yields the caller's session, and the case it may see.

Deny by default lives here. The protected routers (`pages.router`, `api.router`) declare
`current_session` once, for every route they hold; only `pages.public` and `api.public` (home,
login, token, health, NiiVue, the demo brain) go without. A case that is missing or belongs to
someone else is the same 404 (`owned_case`), checked once per resource type rather than in each
handler.

Event loop rule (one, everywhere in the site): handlers and dependencies are `async def`, because
the upload streams its body; every call into the database (and any file work beyond a stat) goes
through `asyncio.to_thread`. tests/web/test_structure.py checks it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import auth, jobs
from .settings import Settings

SESSION_COOKIE = "radpath_session"
LOGIN_COOKIE = "radpath_login"
"""Pre-login CSRF token (double submit); replaced by the session at login."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UPLOAD_PATHS = frozenset({"/upload", "/api/cases"})
CSRF_MESSAGE = "the form's security token is missing or stale (CSRF check); reload the page and try again"


class Problem(StarletteHTTPException):
    """An HTTP error with a message for people (HTML page or JSON `detail`)."""


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def engine_of(request: Request) -> sa.Engine:
    return request.app.state.engine


def client_of(request: Request) -> str:
    return request.client.host if request.client else "?"


async def optional_session(request: Request) -> auth.Session | None:
    """The browser's live session or None (public pages show the user's name when logged in)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await asyncio.to_thread(auth.lookup_session, engine_of(request), settings_of(request), token, "web")


async def current_session(request: Request) -> auth.Session:
    """The caller's live session (bearer token or cookie); 401 otherwise. Cookie writes need the CSRF token.

    The Origin check of every write is done before this, by `middleware`.
    """
    engine, settings = engine_of(request), settings_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        s = await asyncio.to_thread(auth.lookup_session, engine, settings, header[7:].strip(), "api")
        if s is None:
            raise Problem(
                401,
                "the API token is invalid or expired; get a new one from POST /api/token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return s
    s = await asyncio.to_thread(auth.lookup_session, engine, settings, request.cookies.get(SESSION_COOKIE), "web")
    if s is None:
        raise Problem(401, "you are not logged in, or your session has ended: please log in")
    if request.method not in SAFE_METHODS and not await _csrf_token_ok(request, s):
        raise Problem(403, CSRF_MESSAGE)
    return s


async def _csrf_token_ok(request: Request, s: auth.Session) -> bool:
    """The session's CSRF token in the X-CSRF-Token header or the form. Uploads carry it inside the
    streamed body: `case_ops.accept_upload` checks it after parsing."""
    ctype = request.headers.get("content-type", "")
    if request.url.path in UPLOAD_PATHS and ctype.startswith("multipart/form-data"):
        return True
    given = request.headers.get("x-csrf-token")
    if given is None and ctype.startswith("application/x-www-form-urlencoded"):
        given = (await request.form()).get("csrf_token")
    return auth.csrf_ok(s.csrf, given if isinstance(given, str) else None)


Session = Annotated[auth.Session, Depends(current_session)]


async def owned_case(case_id: str, request: Request, s: Session) -> dict:
    """The case `case_id` if the caller owns it; the same 404 whether it is missing or someone else's."""
    case = None
    if len(case_id) == 32:
        case = await asyncio.to_thread(jobs.get, engine_of(request), case_id, s.user.id)
    if case is None:
        raise Problem(404, "no such case (it may have been deleted)")
    return case


OwnedCase = Annotated[dict, Depends(owned_case)]
