"""A clinical study through the site in real headless Chromium: log in, upload one DICOM .zip, watch
the preparation stage on the case's page, then the result with the series table and the QC picture.
The worker runs in this process (so the 4 mm test copy of the atlas applies); the site is `radpath
web` in its own process, as in tests/web/test_browser.py. Screenshots: test-artifacts/web/study-*.png."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright")

from radpath.prepare import register
from tests.prepare.conftest import PHI, atlas_study, zip_folder
from tests.web.conftest import PASSWORD
from tests.web.test_browser import ARTIFACTS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")


def test_upload_a_dicom_zip_see_the_stage_then_the_series_and_qc(
    site,
    page,
    small_atlas,
    model_server,
    web_model_base,
    tmp_path,
    monkeypatch,
):
    from radpath.client.grpc_client import GlioClient
    from radpath.web.db import engine_for
    from radpath.web.settings import load_settings
    from radpath.web.worker import run_one

    vol, mask = small_atlas
    study = atlas_study(tmp_path / "study", vol, mask)
    z = zip_folder(study, tmp_path / "mri-study.zip", "DICOMDIR_EXPORT")
    slow = register.coregister

    def coregister_slowly(*a, **k):  # long enough for the page to show the stage
        time.sleep(2.5)
        return slow(*a, **k)

    monkeypatch.setattr(register, "coregister", coregister_slowly)
    page.goto(site.url + "/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/cases")
    page.goto(site.url + "/upload")
    page.set_input_files("input[name=study]", str(z))
    page.screenshot(path=str(ARTIFACTS / "study-upload.png"), full_page=True)
    page.get_by_test_id("study-submit").click()
    page.wait_for_url("**/cases/*")
    assert page.get_by_test_id("job-state").inner_text() == "queued"

    s = load_settings(data_dir=site.data, server=model_server, model_base=web_model_base)
    done = threading.Event()

    def work():
        with GlioClient(s.server, s.model) as gc:
            run_one(s, engine_for(s.db_url), "test-worker", gc)
        done.set()

    threading.Thread(target=work, daemon=True).start()
    page.wait_for_selector("[data-testid=job-status]:text-matches('Preparing the upload')", timeout=60_000)
    status = page.get_by_test_id("job-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "study-preparing.png"), full_page=True)
    assert "stage" in status and "of 8" in status
    assert done.wait(120)
    page.wait_for_selector("[data-testid=job-state]:text-matches('succeeded|failed')", timeout=30_000)
    assert page.get_by_test_id("job-state").inner_text() == "succeeded", page.content()[-2000:]
    assert page.get_by_test_id("prepared-flair").inner_text() == 'series 5 "MRHR FLAIR AX"'
    assert page.get_by_test_id("prepared-t1ce").inner_text() == 'series 13 "MRHR T1 AX POST GAD"'
    assert page.get_by_test_id("prepare-qc").evaluate("img => img.naturalWidth") > 500
    page.screenshot(path=str(ARTIFACTS / "study-result.png"), full_page=True)
    assert not any(p in page.content() for p in PHI)
    assert page.errors == [], page.errors
