"""Issue 19, item 12: invisible and direction-changing characters in file names are never echoed, and
the data folder (0700) and its files (0600: database, uploads, results) are private whatever the
umask. Runs the app in-process; the real `radpath web` also sets umask 077 for everything else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from radpath.web.safe_text import has_invisible, visible_text
from radpath.web.uploads import display_name
from tests.web.conftest import csrf_of, login, upload_files

HTML = {"accept": "text/html"}
RLO, LRI, PDI, ZWSP, BOM = "\u202e", "\u2066", "\u2069", "\u200b", "\ufeff"


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what most shells have: files 0644 unless we say otherwise
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_visible_text_drops_bidi_controls_and_invisible_characters():
    assert visible_text(f"x{RLO}zg.iin.csv") == "xzg.iin.csv"  # no longer shown as 'xvsc.nii.gz'
    assert visible_text(f"{LRI}a{ZWSP}b{PDI}{BOM}\u00ad.nii.gz\u2028") == "ab.nii.gz"
    assert visible_text("Ärztin T1 – 2024.nii.gz") == "Ärztin T1 – 2024.nii.gz"  # ordinary text kept
    assert visible_text("e\u0301.nii") == "\u00e9.nii"  # NFC
    assert display_name(f"C:\\scans\\flair{RLO}.nii.gz") == "flair.nii.gz"
    assert has_invisible(RLO) and not has_invisible("flair.nii.gz")


def test_file_names_with_bidi_controls_are_shown_without_them(client, small_case):
    assert login(client).status_code == 303
    csrf = csrf_of(client.get("/upload").text)
    names = {"flair": f"patient{RLO}zg.iin.flair.nii.gz", "t1": f"{LRI}t1{PDI}{ZWSP}.nii.gz"}
    r = upload_files(client, small_case, csrf, names=names)
    assert r.status_code == 303, r.text[-400:]
    page = client.get(r.headers["location"], headers=HTML).text
    api = client.get("/api/cases").json()[0]["files"]
    for text in (page, str(api)):
        assert not has_invisible(text.replace("\n", "").replace("\r", "").replace("\t", "")), "invisible character"
    assert "patientzg.iin.flair.nii.gz" in page and "t1.nii.gz" in page
    assert api["flair"] == "patientzg.iin.flair.nii.gz" and api["t1"] == "t1.nii.gz"
    refused = upload_files(client, small_case, csrf, names={"t2": f"scan{RLO}zg.iin.exe"})
    assert refused.status_code == 415 and RLO not in refused.text and "scanzg.iin.exe" in refused.text


def test_data_folder_database_and_uploads_are_private(loose_umask, settings, users, small_case):
    from radpath.web.app import create_app

    data = settings.data_dir
    with TestClient(create_app(settings)) as c:
        assert login(c).status_code == 303
        r = upload_files(c, small_case, csrf_of(c.get("/upload").text))
        assert r.status_code == 303
    case_id = r.headers["location"].rsplit("/", 1)[1]
    assert _mode(data) == 0o700
    db = data / "radpath-web.sqlite3"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), data / "secret.key"):
        if path.exists():
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for folder in (settings.cases_dir(), settings.cases_dir() / case_id, settings.cases_dir() / case_id / "input"):
        assert _mode(folder) == 0o700, (folder, oct(_mode(folder)))
    assert _mode(settings.staging_dir()) == 0o700
    inputs = list((settings.cases_dir() / case_id / "input").iterdir())
    assert len(inputs) == 4 and all(_mode(p) == 0o600 for p in inputs), [oct(_mode(p)) for p in inputs]


def test_an_existing_open_data_folder_and_database_are_narrowed(loose_umask, tmp_path):
    from radpath.web.db import engine_for
    from radpath.web.settings import load_settings

    data = tmp_path / "old-install"
    data.mkdir(mode=0o755)
    (data / "radpath-web.sqlite3").touch(mode=0o644)
    settings = load_settings(data_dir=data)
    engine_for(settings.db_url)
    assert _mode(data) == 0o700 and _mode(data / "radpath-web.sqlite3") == 0o600
