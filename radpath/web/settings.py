"""Typed settings of the web app: command-line flags first, then RADPATH_WEB_* environment variables.

The session secret is generated once and kept in the data folder (mode 0600), so restarts keep
users logged in while every installation has its own secret; `RADPATH_WEB_SECRET` overrides it
(several replicas behind a load balancer must share one).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent
STATIC_DIR = WEB_ROOT / "static"
TEMPLATE_DIR = WEB_ROOT / "templates"
NIIVUE_JS = Path(
    os.environ.get("RADPATH_WEB_NIIVUE_JS") or WEB_ROOT / "node_modules" / "@niivue" / "niivue" / "dist" / "index.js"
)
"""Installed by `npm ci` in radpath/web (scripts/setup); served from our own origin, never a CDN."""


def _env(name: str, default):
    raw = os.environ.get(f"RADPATH_WEB_{name}")
    if raw is None:
        return default
    return type(default)(raw) if default is not None else raw


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("radpath-web-data")
    database_url: str | None = None
    """SQLAlchemy URL; default: SQLite file data_dir/radpath-web.sqlite3."""
    server: str = "localhost:8500"
    model: str = "glioma"
    model_base: Path | None = None
    """The model store the server reads (read-only here): where the model card comes from."""
    max_upload_bytes: int = 400_000_000
    """Whole request; four full-size BraTS .nii files are ~140 MB, .nii.gz ~20 MB."""
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 3600
    login_max_failures: int = 5
    """Failed logins for one account from one client before each further try must wait (no lock-out:
    the same account from another client is not slowed; see `auth`)."""
    login_delay_seconds: float = 5.0
    """The first wait; it doubles with every further failure, up to `login_max_delay_seconds`."""
    login_max_delay_seconds: float = 15 * 60
    login_client_max_failures: int = 30
    """Failed logins from one client, whatever the accounts, before its tries must wait (spraying)."""
    login_account_max_failures: int = 100
    """Failed logins for one account from all clients (ASVS 2.2.1: <= 100 an hour); past it only the
    clients that failed on it must wait, so a client with no failures still logs in."""
    login_window_seconds: int = 3600
    """A count is forgotten this long after its last failure (and at a successful login)."""
    lease_seconds: float = 60.0
    """A running job whose worker stops renewing its lease for this long is taken over."""
    max_attempts: int = 2
    """Attempts before a job whose lease keeps expiring is failed with a reason."""
    poll_seconds: float = 0.2
    classify_timeout: float = 60.0
    max_concurrent_checks: int = 2
    """Uploads checked (fully decoded) at once, each in its own short-lived process (`upload_check`):
    the site's own memory never holds a decoded volume."""
    check_timeout_seconds: float = 300.0
    check_memory_bytes: int = 3 * 1024**3
    """Address-space limit of one checking process (~0.3 GB of it is the libraries; four 400^3
    volumes decoded as float32 take 1 GB). A check over it is refused with 413, not a crash."""
    max_queued_per_user: int = 10
    """Cases one user may have waiting or running; a further upload is refused with 429 until some finish."""
    model_wait_seconds: float = 30 * 60
    """How long a worker keeps retrying an unreachable model server (backoff up to
    `model_retry_max_seconds`) before the case fails with a plain message."""
    model_retry_max_seconds: float = 60.0
    shutdown_grace_seconds: float = 20.0
    """After SIGTERM: open requests and the workers' current cases get this long; a case not finished
    by then is put back in the queue (released), and a worker still alive after it is killed."""
    secure_cookies: bool | None = None
    """None: Secure when the request came over HTTPS (or X-Forwarded-Proto says so)."""
    secret: str = field(default="", repr=False)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'radpath-web.sqlite3').resolve()}"

    def cases_dir(self) -> Path:
        return self.data_dir / "cases"

    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    def demo_dir(self) -> Path:
        return self.data_dir / "demo"


def load_settings(**overrides) -> Settings:
    """Settings from the environment, then `overrides` (the CLI's flags; None means 'not given')."""
    base = Settings()
    env = {
        "data_dir": Path(_env("DATA", str(base.data_dir))),
        "database_url": os.environ.get("RADPATH_WEB_DATABASE_URL") or None,
        "server": os.environ.get("RADPATH_SERVER", base.server),
        "model": _env("MODEL", base.model),
        "max_upload_bytes": _env("MAX_UPLOAD_BYTES", base.max_upload_bytes),
        "lease_seconds": _env("LEASE_SECONDS", base.lease_seconds),
        "check_memory_bytes": _env("CHECK_MEMORY_BYTES", base.check_memory_bytes),
        "max_queued_per_user": _env("MAX_QUEUED_PER_USER", base.max_queued_per_user),
        "model_wait_seconds": _env("MODEL_WAIT_SECONDS", base.model_wait_seconds),
        "shutdown_grace_seconds": _env("SHUTDOWN_GRACE_SECONDS", base.shutdown_grace_seconds),
        "model_base": os.environ.get("RADPATH_WEB_MODEL_BASE") or None,
    }
    values = {**env, **{k: v for k, v in overrides.items() if v is not None}}
    values["data_dir"] = Path(values["data_dir"])
    if values.get("model_base"):
        values["model_base"] = Path(values["model_base"])
    settings = replace(base, **values)
    private_dir(settings.data_dir)
    return replace(settings, secret=os.environ.get("RADPATH_WEB_SECRET") or _stored_secret(settings.data_dir))


def private_dir(path: Path) -> Path:
    """`path` created if needed and narrowed to 0700 (uploads and results are patient data); a
    folder we do not own (a volume's mount point) is left as it is, with a warning."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        try:
            path.chmod(0o700)
        except PermissionError:
            log.warning("cannot make %s private (0700): not its owner", path)
    return path


def _stored_secret(data_dir: Path) -> str:
    private_dir(data_dir)
    path = data_dir / "secret.key"
    if not path.exists():
        tmp = data_dir / f".secret.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic; the first of several starting processes wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
