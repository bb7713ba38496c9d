"""Fixtures of the web app tests: a data folder, an app with two users, small synthetic cases, and
(for the tests that classify) the built-in model server with a tiny exported model."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.serving.conftest import _start_builtin, model_base  # noqa: F401  (shared session fixtures)

PASSWORD = "correct horse battery"
SMALL_SHAPE = (64, 64, 40)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from client.web.demo_volume import ensure_demo_volume
    folder = tmp_path_factory.mktemp("demo")
    ensure_demo_volume(folder)
    return folder


def write_small_case(root: Path, index: int = 0, shape=SMALL_SHAPE, seed: int = 3) -> dict[str, Path]:
    """The four files of one synthetic case (never patient data), keyed by sequence."""
    from synth.cohort import plan_cohort, write_case
    plan = plan_cohort(max(3, index + 1), seed=seed)[index]
    (root / "Segmentation").mkdir(parents=True, exist_ok=True)
    write_case(root, plan, seed, shape)
    folder = root / "Radiology" / plan.case_id
    return {seq: folder / f"{plan.case_id}_{seq}.nii.gz" for seq in ("flair", "t1", "t1ce", "t2")}


@pytest.fixture(scope="session")
def small_case(tmp_path_factory) -> dict[str, Path]:
    return write_small_case(tmp_path_factory.mktemp("case"))


@pytest.fixture
def settings(tmp_path, demo_dir):
    from client.web.settings import load_settings
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data / "demo")
    return load_settings(data_dir=data, server="127.0.0.1:1", lease_seconds=5.0)


@pytest.fixture
def users(settings):
    from client.web import auth
    from client.web.db import engine_for
    engine = engine_for(settings.db_url)
    auth.add_user(engine, "alice", PASSWORD)
    auth.add_user(engine, "bob", PASSWORD)
    return engine


@pytest.fixture
def client(settings, users):
    from fastapi.testclient import TestClient

    from client.web.app import create_app
    with TestClient(create_app(settings)) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(c, username: str = "alice", password: str = PASSWORD):
    token = csrf_of(c.get("/login").text)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  follow_redirects=False)


def upload_files(c, files: dict[str, Path], csrf: str | None, names: dict[str, str] | None = None, **fields):
    names = names or {}
    parts = {seq: (names.get(seq, p.name), p.read_bytes(), "application/gzip") for seq, p in files.items()}
    data = {k: v for k, v in {"csrf_token": csrf, **fields}.items() if v is not None}
    return c.post("/upload", data=data, files=parts, follow_redirects=False, headers={"accept": "text/html"})
