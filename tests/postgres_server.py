"""A throwaway PostgreSQL server for the tests, started from the installed binaries.

The job queue must be tested on PostgreSQL (row locks, `SKIP LOCKED`), but a new contributor's
machine may have PostgreSQL installed and not running, or no role for them. So the tests start
their own server: `initdb` into a private temporary folder, a Unix socket in that folder (no TCP
port, so nothing can collide with a running cluster), trust authentication, fsync off; stopped
and deleted at the end of the session. PostgreSQL refuses to run as root: as root, the server
runs as the `postgres` account the Debian package creates (or `nobody`), which owns the folder.

`RADPATH_TEST_DATABASE_URL` overrides all this (a server you run yourself; the tests drop and
recreate the web app's tables in that database). Tests skip only where PostgreSQL is not
installed at all (`scripts/setup` installs it when run as root).

Why not `pytest-postgresql`: it does the same, but runs `initdb`/`pg_ctl` as the current user, so it
fails as root (CI containers) and would still need this privilege drop; it also pulls in two more
packages (mirakuru, port-for) for what is ~60 lines here.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DATABASE = "radpath_test"
ROLE = "radpath"
PORT = 5432  # only names the socket file inside the private folder
START_TIMEOUT_S = 60


def postgres_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


def _run(cmd: list[str], account: pwd.struct_passwd | None, server_log: Path | None = None) -> None:
    as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, **as_user)
    if done.returncode != 0:
        log = server_log.read_text() if server_log is not None and server_log.exists() else ""
        raise RuntimeError(f"{' '.join(cmd[:2])} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}{log}")


def start_postgres(bindir: Path) -> tuple[str, Path, pwd.struct_passwd | None]:
    """Start a fresh server; returns (SQLAlchemy URL of an empty database, its folder, its account)."""
    account = _server_account()
    folder = Path(tempfile.mkdtemp(prefix="radpath-pg-"))  # short: a socket path holds at most 107 bytes
    try:
        if account is not None:
            os.chown(folder, account.pw_uid, account.pw_gid)
        data, log = folder / "data", folder / "server.log"  # both written by the server's account
        _run([str(bindir / "initdb"), "-D", str(data), "-U", ROLE, "-A", "trust", "-E", "UTF8", "--no-sync"], account)
        options = f"-k {folder} -p {PORT} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
        _run([str(bindir / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(log), "-o", options], account, log)
        _run([str(bindir / "createdb"), "-h", str(folder), "-p", str(PORT), "-U", ROLE, DATABASE], account, log)
    except BaseException:
        stop_postgres(bindir, folder, account)
        raise
    return f"postgresql+psycopg://{ROLE}@/{DATABASE}?host={folder}&port={PORT}", folder, account


def stop_postgres(bindir: Path, folder: Path, account: pwd.struct_passwd | None) -> None:
    """Stop the server (if it runs) and delete its folder."""
    try:
        if (folder / "data" / "postmaster.pid").exists():
            _run([str(bindir / "pg_ctl"), "stop", "-D", str(folder / "data"), "-m", "immediate"], account)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL database the tests own (see the module docstring)."""
    given = os.environ.get("RADPATH_TEST_DATABASE_URL")
    if given:
        yield given
        return
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup installs it when run as root)")
    url, folder, account = start_postgres(bindir)
    try:
        yield url
    finally:
        stop_postgres(bindir, folder, account)
