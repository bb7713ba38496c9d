"""Tables and the engine: SQLite (one file, default) or PostgreSQL (several replicas), one schema.

Times are UNIX seconds (float) so both databases compare them the same way. The audit table is
append-only: triggers refuse UPDATE and DELETE on it, in both databases.
"""

from __future__ import annotations

import logging
import os
import threading

import sqlalchemy as sa
from sqlalchemy import event

log = logging.getLogger(__name__)

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False, default="web"),  # web: cookie + CSRF; api: bearer token
)

login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),  # pair:<client> <account> | client:<c> | account:<a>
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("age_days", sa.Float),
    sa.Column("original_names", sa.Text, nullable=False),
    # what the queue is doing about the case now (waiting for the model server, retried after a
    # worker stopped); shown on the result page while the case is not finished
    sa.Column("note", sa.Text),
    sa.Column("started_at", sa.Float),  # the last claim: users are served in turn (see jobs)
)

ADDED_COLUMNS = {"cases": ["note", "started_at"]}
"""Columns added after the first release: `create_all` does not alter existing tables, so they
are added with ALTER TABLE when missing (an old database keeps working after an upgrade)."""

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("username", sa.String(320)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("case_id", sa.String(32)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("client", sa.String(64)),
)

_SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]
_PG_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION radpath_audit_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_append_only ON audit_log",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION radpath_audit_append_only()",
]

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process, with the schema created (idempotent)."""
    with _lock:
        if url not in _engines:
            _engines[url] = _create(url)
        return _engines[url]


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask, often 0644); its -wal
    and -shm files take the database file's mode. An existing file is narrowed to 0600."""
    path = sa.engine.make_url(url).database
    if not path or path == ":memory:":
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:
            log.warning("cannot make %s private (0600): not its owner", path + suffix)


def _add_missing_columns(conn) -> None:
    inspector = sa.inspect(conn)
    for table, names in ADDED_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for name in names:
            if name not in have:
                column = metadata.tables[table].c[name]
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
                log.info("database: added column %s.%s", table, name)


def _create(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never block the writer (web + workers)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # several replicas may create the schema at once
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(4242001)"))
        metadata.create_all(conn)
        _add_missing_columns(conn)
        for stmt in _SQLITE_APPEND_ONLY if engine.dialect.name == "sqlite" else _PG_APPEND_ONLY:
            conn.execute(sa.text(stmt))
    return engine
