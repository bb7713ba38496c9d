"""Passwords (argon2id), server-side sessions, CSRF tokens and login throttling without lock-out.

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
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from radpath.contract.errors import RadPathError

from .db import login_attempts, sessions, users
from .settings import Settings

log = logging.getLogger(__name__)

HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
HASH_SLOTS = threading.BoundedSemaphore(4)
"""Password checks at once per process: each argon2id check holds 64 MiB while it runs, so a burst
of logins (64 open requests) would otherwise take the site up by 4 GB; the rest wait their turn."""
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10


class AuthError(RadPathError):
    """Bad credentials or an account operation that cannot be done."""


class ThrottledError(AuthError):
    """Too many failures: try again after `retry_after` seconds (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: int, why: str = "for this account"):
        self.retry_after = retry_after
        when = f"{retry_after} seconds" if retry_after < 120 else f"{math.ceil(retry_after / 60)} minutes"
        super().__init__(f"too many failed logins {why}; try again in {when}")


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
# Throttling without lock-out (OWASP ASVS 2.2.1). Failures are counted under three keys:
#   pair:<client> <account>  one account from one client: after `login_max_failures`, each further
#                            try waits `login_delay_seconds`, doubling per failure (capped);
#   client:<client>          one client across accounts (spraying): the same growing waits after
#                            `login_client_max_failures`;
#   account:<account>        one account from every client (a botnet, or forged X-Forwarded-For
#                            addresses): past `login_account_max_failures` every client waits
#                            except a browser that logged in to this account before (its device
#                            cookie, `device_mark`) and has not failed since.
# So an attacker hammering an account slows only himself; its owner, from another client, logs in.
# A count is forgotten `login_window_seconds` after its last failure; a successful login clears
# its pair. Unknown accounts are counted like real ones (the answers look the same).
def _throttle_keys(account: str, client: str) -> dict[str, str]:
    return {
        "pair": f"pair:{client} {account}"[:400],
        "client": f"client:{client}"[:400],
        "account": f"account:{account}",
    }


def _wait_left(row, free: int, settings: Settings, now: float) -> float:
    """Seconds this key must still wait (0: free to try)."""
    if row is None or now - row.last_at > settings.login_window_seconds or row.count < free:
        return 0.0
    delay = min(settings.login_delay_seconds * 2 ** min(row.count - free, 30), settings.login_max_delay_seconds)
    return max(0.0, row.last_at + delay - now)


DEVICE_MARKS = 5
"""Accounts one browser's device cookie remembers (a shared workstation)."""


def device_mark(secret: str, account: str) -> str:
    """The device cookie's mark for `account`: HMAC(secret, account), so it cannot be made up."""
    digest = hmac.new(secret.encode(), b"device:" + account.strip().lower().encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def remember_device(secret: str, account: str, cookie: str | None) -> str:
    """The device cookie after a successful login to `account`: its mark first, at most DEVICE_MARKS."""
    mark = device_mark(secret, account)
    others = [m for m in (cookie or "").split(".") if m and m != mark]
    return ".".join([mark, *others][:DEVICE_MARKS])


def _known_device(secret: str, account: str, cookie: str | None) -> bool:
    mark = device_mark(secret, account)
    return any(hmac.compare_digest(mark, m) for m in (cookie or "").split(".")[:DEVICE_MARKS])


def _throttle_check(conn, keys: dict[str, str], settings: Settings, now: float, known: bool) -> None:
    rows = {r.key: r for r in conn.execute(sa.select(login_attempts).where(login_attempts.c.key.in_(keys.values())))}
    pair, client, account = (rows.get(keys[k]) for k in ("pair", "client", "account"))
    waits = [
        (_wait_left(pair, settings.login_max_failures, settings, now), "for this account from your address"),
        (_wait_left(client, settings.login_client_max_failures, settings, now), "from your address"),
    ]
    failed_here = pair is not None and now - pair.last_at <= settings.login_window_seconds
    if failed_here or not known:
        waits.append((_wait_left(account, settings.login_account_max_failures, settings, now), "for this account"))
    wait, why = max(waits)
    if wait > 0:
        raise ThrottledError(math.ceil(wait), why)


def _count_failure(engine: sa.Engine, keys: dict[str, str], settings: Settings, now: float) -> None:
    for key in keys.values():
        for _ in range(3):  # two replicas may insert the same key at once: then update
            try:
                with engine.begin() as conn:
                    row = conn.execute(sa.select(login_attempts).where(login_attempts.c.key == key)).first()
                    if row is None:
                        conn.execute(login_attempts.insert().values(key=key, count=1, first_at=now, last_at=now))
                    elif now - row.last_at > settings.login_window_seconds:
                        conn.execute(
                            login_attempts.update()
                            .where(login_attempts.c.key == key)
                            .values(count=1, first_at=now, last_at=now)
                        )
                    else:
                        conn.execute(
                            login_attempts.update()
                            .where(login_attempts.c.key == key)
                            .values(count=login_attempts.c.count + 1, last_at=now)
                        )
                break
            except sa.exc.IntegrityError:
                continue


def authenticate(
    engine: sa.Engine, settings: Settings, username: str, password: str, client: str, device: str | None = None
) -> User:
    """The user, or AuthError with one message for every kind of failure (ThrottledError: wait first).

    `client` is the caller's address (behind a trusted proxy: the forwarded one); `device` the
    browser's device cookie, if any (see `remember_device`)."""
    now = time.time()
    account = username.strip().lower()[:320]
    keys = _throttle_keys(account, str(client)[:64])
    with engine.connect() as conn:
        _throttle_check(conn, keys, settings, now, _known_device(settings.secret, account, device))
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        with HASH_SLOTS:
            ok = HASHER.verify(stored, password) and row is not None and not row.disabled
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        _count_failure(engine, keys, settings, now)
        raise AuthError("invalid user name or password")
    with engine.begin() as conn:
        conn.execute(login_attempts.delete().where(login_attempts.c.key == keys["pair"]))
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
