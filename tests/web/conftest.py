"""Fixtures of the web app tests: a data folder, an app with two users, small synthetic cases, and
(for the tests that classify) the built-in model server with a tiny exported model."""

from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest

from tests.postgres_server import postgres_url  # noqa: F401  (a throwaway server, started on first use)
from tests.serving.conftest import _start_builtin, model_base  # noqa: F401  (shared session fixtures)

PASSWORD = "correct horse battery"
SMALL_SHAPE = (64, 64, 40)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from radpath.web.demo_volume import ensure_demo_volume

    folder = tmp_path_factory.mktemp("demo")
    ensure_demo_volume(folder)
    return folder


def write_small_case(root: Path, index: int = 0, shape=SMALL_SHAPE, seed: int = 3) -> dict[str, Path]:
    """The four files of one synthetic case (never patient data), keyed by sequence."""
    from radpath.synth.cohort import plan_cohort, write_case

    plan = plan_cohort(max(3, index + 1), seed=seed)[index]
    (root / "Segmentation").mkdir(parents=True, exist_ok=True)
    clean = {"style": "brats"} if "style" in inspect.signature(write_case).parameters else {}
    write_case(root, plan, seed, shape, **clean)  # BraTS-like files: int16, background exactly 0
    folder = root / "Radiology" / plan.case_id
    return {seq: folder / f"{plan.case_id}_{seq}.nii.gz" for seq in ("flair", "t1", "t1ce", "t2")}


@pytest.fixture(scope="session")
def small_case(tmp_path_factory) -> dict[str, Path]:
    return write_small_case(tmp_path_factory.mktemp("case"))


@pytest.fixture
def settings(tmp_path, demo_dir):
    from radpath.web.settings import load_settings

    data = tmp_path / "data"
    shutil.copytree(demo_dir, data / "demo")
    return load_settings(data_dir=data, server="127.0.0.1:1", lease_seconds=5.0)


@pytest.fixture
def users(settings):
    from radpath.web import auth
    from radpath.web.db import engine_for

    engine = engine_for(settings.db_url)
    auth.add_user(engine, "alice", PASSWORD)
    auth.add_user(engine, "bob", PASSWORD)
    return engine


@pytest.fixture
def client(settings, users):
    from fastapi.testclient import TestClient

    from radpath.web.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(c, username: str = "alice", password: str = PASSWORD):
    token = csrf_of(c.get("/login").text)
    return c.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False
    )


def multipart_body(files: dict[str, Path], names: dict[str, str] | None = None, **fields) -> tuple[bytes, str]:
    """A multipart/form-data body built by hand, so hostile file names reach the server byte for byte."""
    boundary = "radpathtestboundary7MA4YWxkTrZu0gW"
    names = names or {}
    out = bytearray()
    for key, value in fields.items():
        if value is not None:
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
    for seq, path in files.items():
        name = names.get(seq, path.name).encode("utf-8", "surrogateescape")
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{seq}"; filename="'.encode()
            + name
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + path.read_bytes()
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def upload_files(
    c, files: dict[str, Path], csrf: str | None, names: dict[str, str] | None = None, path: str = "/upload", **fields
):
    body, ctype = multipart_body(files, names, csrf_token=csrf, **fields)
    return c.post(path, content=body, follow_redirects=False, headers={"accept": "text/html", "content-type": ctype})


@pytest.fixture(scope="session")
def web_model_base(tmp_path_factory) -> Path:
    """A tiny exported model of the demo recipe's kind (pooled with the tumour-statistics reader, so the
    web app's worker sends the statistics as the third input and the result page says the map does not
    show them), or an already exported store named by RADPATH_TEST_MODEL_BASE (e.g. the demo's
    `demo/models`, which also reads the statistics, as the result-page test expects; saves the export
    when iterating on the web tests alone)."""
    import os

    from tests.serving.conftest import export_tiny

    given = os.environ.get("RADPATH_TEST_MODEL_BASE")
    if given:
        return Path(given)
    base = tmp_path_factory.mktemp("web-models") / "base"
    export_tiny(base, seed=1, stats_fusion=0.5)
    return base


@pytest.fixture(scope="session")
def model_server(web_model_base):
    """The built-in TF-Serving-compatible server with a tiny exported model: its gRPC target."""
    backend = _start_builtin(web_model_base)
    yield backend.grpc_target
    backend.stop()


@pytest.fixture
def served(settings, users, model_server, web_model_base):
    """(logged-in client, settings) of a site whose worker classifies on `model_server`."""
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from radpath.web.app import create_app

    s = replace(settings, server=model_server, model_base=web_model_base)
    with TestClient(create_app(s)) as c:
        login(c)
        yield c, s


def fresh_postgres(url: str) -> str:
    """Empty the web app's tables in the test database (the tests own that database)."""
    import sqlalchemy as sa

    from radpath.web import db

    db._engines.pop(url, None)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return fresh_postgres(request.getfixturevalue("postgres_url"))  # tests/postgres_server.py


def write_one_sided_case(folder: Path, side: str = "right", shape=SMALL_SHAPE, seed: int = 3) -> dict[str, Path]:
    """The four files of a synthetic case whose tumour lies in the patient's `side` hemisphere only
    (the volumes mirrored left-right when the generator drew it on the other side)."""
    import numpy as np

    from radpath.synth.cohort import plan_cohort, save_ras, synthesize_case

    plan = plan_cohort(3, seed=seed)[0]
    volumes, seg, _ = synthesize_case(plan, seed, shape, style="brats")
    xs = np.nonzero(seg)[0]
    on_right = xs.mean() > (shape[0] - 1) / 2  # RAS: axis 0 runs towards the patient's right
    assert xs.min() > shape[0] / 2 or xs.max() < shape[0] / 2, "the drawn tumour crosses the midline"
    if on_right != (side == "right"):
        volumes = {k: v[::-1] for k, v in volumes.items()}
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for seq, v in volumes.items():
        files[seq] = folder / f"{side}sided_{seq}.nii.gz"
        save_ras(np.ascontiguousarray(v), files[seq])
    return files
