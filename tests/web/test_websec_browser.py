"""Issue 19, items 11 and 12 in real headless Chromium: with the model server down, the result page
says the case waits for it (not a raw gRPC failure), and a file name carrying a right-to-left
override is shown without it, so the page's text is not reversed. Screenshot:
test-artifacts/web/websec-waiting-bidi.png."""

from __future__ import annotations

import os

import pytest

from radpath.web.safe_text import has_invisible
from tests.web import test_browser
from tests.web.conftest import PASSWORD, multipart_body
from tests.web.test_browser import ARTIFACTS, CHROMIUM, running_site

browser, page = test_browser.browser, test_browser.page  # the same Chromium fixtures

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")
RLO = "\u202e"


@pytest.fixture
def site_without_model_server(tmp_path, demo_dir):
    """The site with one worker whose model server never answers (port 9: discard)."""
    args = ("--workers", "1", "--server", "127.0.0.1:9")
    with running_site(tmp_path / "data", demo_dir, *args, stop_timeout=30) as s:
        yield s.url


def test_waiting_for_the_model_server_and_a_bidi_file_name_on_the_result_page(
    site_without_model_server, page, small_case
):
    url = site_without_model_server
    page.goto(url + "/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/cases")
    # the browser's file picker cannot carry U+202E reliably: the same multipart body a browser
    # sends, posted from the page with its own session and CSRF token
    page.goto(url + "/upload")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    body, ctype = multipart_body(small_case, names={"flair": f"patient{RLO}zg.iin.flair.nii.gz"}, csrf_token=csrf)
    response = page.request.post(
        url + "/upload", data=body, headers={"content-type": ctype, "accept": "text/html"}, max_redirects=0
    )
    assert response.status == 303, response.text()[-400:]
    page.goto(url + response.headers["location"])
    status = page.get_by_test_id("job-status")
    status.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-status]').innerText.includes('model server')",
        timeout=60_000,
    )
    text = status.inner_text()
    assert text.startswith("Waiting for the model server"), text
    assert page.get_by_test_id("job-state").inner_text() == "running"
    files = page.locator("p.files").inner_text()
    assert "patientzg.iin.flair.nii.gz" in files and not has_invisible(files.replace("\n", "")), files
    assert "UNAVAILABLE" not in page.content() and page.get_by_test_id("job-error").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "websec-waiting-bidi.png"), full_page=True)
