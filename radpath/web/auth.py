"""Passwords (argon2id), server-side sessions, CSRF tokens and per-account login throttling.

Session cookies carry only a random token; the database keeps its SHA-256, so a copy of the
database cannot be replayed as cookies. A login always creates a new session (no fixation), logout
deletes it on the server, and a session ends after `session_idle_seconds` without a request or
`session_absolute_seconds` after login. An unknown user and a wrong password get the same answer
after the same argon2 work (a dummy hash is verified), and both count toward the same throttle.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from radpath.contract.errors import RadPathError

from .db import login_failures, sessions, users
from .settings import Settings

log = logging.getLogger(__name__)

HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10


class AuthError(RadPathError):
    """Bad credentials or an account operation that cannot be done."""


class ThrottledError(AuthError):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many failed logins for this account; try again in {max(1, retry_after // 60)} minute(s)")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    kind: str
    token_hash: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- accounts (radpath users ...)
def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password too short: expected at least {MIN_PASSWORD} characters, got {len(password)}")


def add_user(engine: sa.Engine, username: str, password: str, admin: bool = False) -> int:
    if not USERNAME_RE.match(username):
        raise AuthError(f"user name {username!r}: expected 1-64 letters, digits or . _ @ -")
    check_password_rules(password)
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            raise AuthError(f"user {username!r} already exists")
        return conn.execute(
            users.insert().values(
                username=username,
                password_hash=HASHER.hash(password),
                is_admin=admin,
                disabled=False,
                created_at=time.time(),
            )
        ).inserted_primary_key[0]


def list_users(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(users.c.username, users.c.is_admin, users.c.disabled, users.c.created_at).order_by(
                users.c.username
            )
        ).mappings()
        return [dict(r) for r in rows]


def _set(engine: sa.Engine, username: str, **values) -> None:
    with engine.begin() as conn:
        row = conn.execute(sa.select(users.c.id).where(users.c.username == username)).first()
        if row is None:
            raise AuthError(f"no user {username!r} (see `radpath users list`)")
        conn.execute(users.update().where(users.c.id == row.id).values(**values))
        conn.execute(sessions.delete().where(sessions.c.user_id == row.id))  # ends every session


def disable_user(engine: sa.Engine, username: str) -> None:
    _set(engine, username, disabled=True)


def reset_password(engine: sa.Engine, username: str, password: str) -> None:
    check_password_rules(password)
    _set(engine, username, password_hash=HASHER.hash(password), disabled=False)


# ---------------------------------------------------------------- login
def _throttle_check(conn, key: str, settings: Settings, now: float) -> None:
    row = conn.execute(sa.select(login_failures).where(login_failures.c.username == key)).first()
    if row and now - row.first_at < settings.login_window_seconds and row.count >= settings.login_max_failures:
        raise ThrottledError(int(settings.login_window_seconds - (now - row.first_at)))


def _throttle_fail(engine: sa.Engine, key: str, settings: Settings, now: float) -> None:
    with engine.begin() as conn:
        row = conn.execute(sa.select(login_failures).where(login_failures.c.username == key)).first()
        if row is None:
            conn.execute(login_failures.insert().values(username=key, count=1, first_at=now))
        elif now - row.first_at >= settings.login_window_seconds:
            conn.execute(login_failures.update().where(login_failures.c.username == key).values(count=1, first_at=now))
        else:
            conn.execute(
                login_failures.update().where(login_failures.c.username == key).values(count=login_failures.c.count + 1)
            )


def authenticate(engine: sa.Engine, settings: Settings, username: str, password: str) -> User:
    """The user, or AuthError with one message for every kind of failure (ThrottledError when locked)."""
    now = time.time()
    key = username.strip().lower()[:320]
    with engine.connect() as conn:
        _throttle_check(conn, key, settings, now)
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        ok = HASHER.verify(stored, password) and row is not None and not row.disabled
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        _throttle_fail(engine, key, settings, now)
        raise AuthError("invalid user name or password")
    with engine.begin() as conn:
        conn.execute(login_failures.delete().where(login_failures.c.username == key))
        if HASHER.check_needs_rehash(row.password_hash):
            conn.execute(users.update().where(users.c.id == row.id).values(password_hash=HASHER.hash(password)))
    return User(row.id, row.username, bool(row.is_admin))


# ---------------------------------------------------------------- sessions
def create_session(engine: sa.Engine, user: User, kind: str = "web") -> tuple[str, str]:
    """A new (token, csrf) pair; only the token's digest is stored."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
    with engine.begin() as conn:
        conn.execute(
            sessions.insert().values(
                token_hash=_digest(token), user_id=user.id, csrf=csrf, created_at=now, last_seen=now, kind=kind
            )
        )
    return token, csrf


def lookup_session(engine: sa.Engine, settings: Settings, token: str | None, kind: str = "web") -> Session | None:
    """The live session for `token` (its idle timer restarted), or None; expired ones are deleted."""
    if not token or len(token) > 128:
        return None
    digest, now = _digest(token), time.time()
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(sessions, users.c.username, users.c.is_admin, users.c.disabled)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == digest, sessions.c.kind == kind)
        ).first()
        if row is None:
            return None
        if (
            row.disabled
            or now - row.last_seen > settings.session_idle_seconds
            or now - row.created_at > settings.session_absolute_seconds
        ):
            conn.execute(sessions.delete().where(sessions.c.token_hash == digest))
            return None
        if now - row.last_seen > 5:  # do not write on every request
            conn.execute(sessions.update().where(sessions.c.token_hash == digest).values(last_seen=now))
    return Session(User(row.user_id, row.username, bool(row.is_admin)), row.csrf, row.kind, digest)


def end_session(engine: sa.Engine, token_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def end_session_token(engine: sa.Engine, token: str) -> None:
    """End the session a cookie or bearer token names (if it is live); for callers holding the token itself."""
    end_session(engine, _digest(token))


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
