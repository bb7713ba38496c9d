"""The site in real headless Chromium (Debian's, driven by Playwright; never `playwright install`).

Home renders a non-blank 3D view, every control changes it, save-image downloads a PNG; log in,
upload a synthetic case, and the result page shows the class and the case's 3D view. Screenshots
are kept in test-artifacts/web/ (CI artefacts)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.web.conftest import PASSWORD

CHROMIUM = os.environ.get("RADPATH_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CLI = [sys.executable, "-m", "radpath.web.cli"]
CONTROLS = [
    "rotate-left",
    "rotate-right",
    "opacity-up",
    "opacity-down",
    "contrast-up",
    "contrast-down",
    "zoom-in",
    "zoom-out",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    def __init__(self, url: str, data: Path, env: dict):
        self.url, self.data, self.env = url, data, env


@contextlib.contextmanager
def running_site(data: Path, demo_dir: Path, *args: str, stop_timeout: float = 20):
    """`radpath web` on a free port over a fresh data folder with user alice, until the block ends."""
    shutil.copytree(demo_dir, data / "demo")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        CLI + ["users", "add", "alice", "--password-stdin", "--data", str(data)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    port = _free_port()
    proc = subprocess.Popen(CLI + ["web", "--port", str(port), "--data", str(data), *args], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the site did not start") from None
            time.sleep(0.3)
    try:
        yield Site(url, data, env)
    finally:
        proc.terminate()
        proc.wait(stop_timeout)


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_dir):
    """`radpath web` on a free port, without workers (the upload test starts one)."""
    with running_site(tmp_path_factory.mktemp("site") / "data", demo_dir, "--workers", "0") as s:
        yield s


@pytest.fixture
def worker(site, model_server, web_model_base):
    """`radpath web-worker` on the site's data, talking to the tiny model server."""
    proc = subprocess.Popen(
        CLI + ["web-worker", "--data", str(site.data), "--server", model_server, "--model-base", str(web_model_base)],
        env=site.env,
        cwd=ROOT,
    )
    yield proc
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # device_scale_factor 0.5: a quarter of the pixels for software WebGL (the CI machine has no GPU)
    context = browser.new_context(
        viewport={"width": 1100, "height": 1300}, device_scale_factor=0.5, accept_downloads=True
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.errors = errors
    yield pg
    context.close()


GRAB = """() => {
  const c = document.querySelector('canvas[data-testid=viewer]');
  window.radpathViewer.nv.drawScene();
  const off = document.createElement('canvas'); off.width = 160; off.height = 120;
  const ctx = off.getContext('2d'); ctx.drawImage(c, 0, 0, 160, 120);
  return Array.from(ctx.getImageData(0, 0, 160, 120).data);
}"""


def _view(page) -> np.ndarray:
    """The viewer's pixels, 160 x 120 RGB, read in the page right after a redraw."""
    return np.asarray(page.evaluate(GRAB), np.uint8).reshape(120, 160, 4)[..., :3].astype(np.int16)


def _wait_ready(page, timeout: float = 60_000) -> None:
    page.wait_for_selector("canvas[data-testid=viewer][data-ready=true]", timeout=timeout)
    page.wait_for_timeout(300)


def _shot(page, name: str) -> None:
    page.locator("canvas[data-testid=viewer]").screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_home_3d_view_renders_and_every_control_changes_it(site, page):
    page.goto(site.url + "/")
    _wait_ready(page)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    _shot(page, "home-viewer")
    before = _view(page)
    assert before.std() > 10 and (before.sum(axis=2) > 60).mean() > 0.05, "the 3D view is blank"
    corners = np.concatenate([before[:10, :10], before[:10, -10:], before[-10:, :10], before[-10:, -10:]])
    assert corners.mean() < 30, "the corners are not background: the render shows the volume's box, not the brain"
    noise = np.abs(_view(page) - before).mean()  # a redraw with no change: the floor to beat
    assert noise < 0.05, noise
    for control in CONTROLS:
        page.get_by_test_id(control).click()
        page.wait_for_timeout(250)
        after = _view(page)
        _shot(page, f"home-after-{control}")
        change = np.abs(after - before).mean()
        assert change > 0.1, f"{control} did not change the view (mean pixel change {change:.3f})"
        before = after
    # mouse drag rotates too
    box = page.get_by_test_id("viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 10, steps=8)
    page.mouse.up()
    page.wait_for_timeout(250)
    assert np.abs(_view(page) - before).mean() > 0.1, "dragging did not rotate the view"
    assert page.errors == [], page.errors


def test_save_image_downloads_a_png(site, page):
    page.goto(site.url + "/")
    _wait_ready(page)
    with page.expect_download() as info:
        page.get_by_test_id("save-image").click()
    path = ARTIFACTS / "saved-view.png"
    info.value.save_as(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_login_upload_and_result_page(site, worker, page, small_case):
    page.goto(site.url + "/")
    page.get_by_test_id("get-started").click()
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong password!")
    page.get_by_test_id("login-submit").click()
    assert "invalid user name or password" in page.get_by_test_id("error").inner_text()
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/cases")
    page.goto(site.url + "/upload")
    for seq, path in small_case.items():
        page.set_input_files(f"input[name={seq}]", str(path))
    page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True)
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url("**/cases/*")
    page.wait_for_selector("[data-testid=job-state]:text-matches('succeeded|failed')", timeout=90_000)
    assert page.get_by_test_id("job-state").inner_text() == "succeeded", page.content()[-2000:]
    assert page.get_by_test_id("predicted-class").inner_text() in ("A", "O", "G")
    probs = [float(page.get_by_test_id(f"prob-{c}").inner_text()) for c in "AOG"]
    assert abs(sum(probs) - 1) < 0.01
    assert "version" in page.get_by_test_id("model-name").inner_text()
    for seq in small_case:
        assert page.get_by_test_id(f"slice-{seq}").evaluate("img => img.naturalWidth") > 0
    assert page.get_by_test_id("refer").count() == 1  # refer flag with reasons, or the threshold it cleared
    assert page.get_by_test_id("explanation").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [896, 448]
    # the served model (the demo recipe's kind) also read the whole tumour's statistics: the caption says so
    assert "statistics of the whole found tumour" in page.get_by_test_id("stats-note").inner_text()
    _wait_ready(page)
    page.screenshot(path=str(ARTIFACTS / "result.png"), full_page=True)
    _shot(page, "result-viewer")
    view = _view(page)
    assert view.std() > 10 and view[:10, :10].mean() < 30, "the case's 3D view is blank or shows a box"
    red = (view[..., 0] > view[..., 1] + 60).mean()
    assert red > 0.002, f"no tumour overlay in the 3D view (red fraction {red:.4f})"
    with page.expect_download() as info:
        page.get_by_test_id("download-json").click()
    import json

    result = json.loads(Path(info.value.path()).read_text())
    assert result["result"]["class"] == page.get_by_test_id("predicted-class").inner_text()
    page.goto(site.url + "/cases")
    row = page.get_by_test_id("cases").locator("tbody tr")
    assert row.count() == 1 and "succeeded" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "cases.png"), full_page=True)
    # the one expected console error: the 401 answer to the deliberately wrong password
    assert [e for e in page.errors if "status of 401" not in e] == [], page.errors


PIXELS = """(sel) => {
  const img = document.querySelector(sel);
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
}"""


def _picture(page, testid: str) -> np.ndarray:
    """The RGB pixels of an <img> as the browser decoded it."""
    w, h, data = page.evaluate(PIXELS, f"img[data-testid={testid}]")
    return np.asarray(data, np.uint8).reshape(h, w, 4)[..., :3]


def _login(page, site) -> None:
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("login-submit").click()


def test_one_sided_tumour_same_side_everywhere_then_delete_and_login_return(site, worker, page, tmp_path):
    """Issue 19: a tumour in the patient's right hemisphere is on the image's left in every picture,
    each labelled R / L; one file in two slots is refused; delete asks first; after a 401 the login
    returns to the page asked for; "My cases" marks refer and warnings."""
    from tests.web.conftest import write_one_sided_case

    files = write_one_sided_case(tmp_path / "right", "right")
    page.goto(site.url + "/upload")  # not logged in: the login form, then back here
    assert "/upload" in page.url
    _login(page, site)
    page.wait_for_url("**/upload")
    for seq, path in {**files, "t2": files["flair"]}.items():  # the FLAIR file also in the T2 slot
        page.set_input_files(f"input[name={seq}]", str(path))
    page.get_by_test_id("upload-submit").click()
    error = page.get_by_test_id("error").inner_text()
    assert "same voxels as the flair file" in error and "t2" in error, error
    page.screenshot(path=str(ARTIFACTS / "upload-same-file-refused.png"), full_page=True)
    for seq, path in files.items():
        page.set_input_files(f"input[name={seq}]", str(path))
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url("**/cases/*")
    case_url = page.url
    page.wait_for_selector("[data-testid=job-state]:text-matches('succeeded|failed')", timeout=90_000)
    assert page.get_by_test_id("job-state").inner_text() == "succeeded", page.content()[-2000:]
    page.screenshot(path=str(ARTIFACTS / "result-right-sided.png"), full_page=True)
    assert "patient's right (R) on the image's left" in page.get_by_test_id("orientation-note").inner_text()
    for testid, colour in [(f"slice-{seq}", (255, 40, 40)) for seq in files] + [("explanation", (0, 255, 255))]:
        rgb = _picture(page, testid)
        if testid == "explanation":  # 2 rows (brain view, tumour view) x 4 sequences: the brain view tells sides
            rgb = rgb[: rgb.shape[0] // 2]
        outline = np.nonzero((rgb == np.array(colour, np.uint8)).all(-1))[1]
        width = rgb.shape[1] // (4 if testid == "explanation" else 1)
        columns = outline % width
        assert outline.size and columns.max() < width / 2, (testid, columns.min(), columns.max())
        yellow = (rgb == np.array([255, 230, 0], np.uint8)).all(-1)
        left, right = yellow[:, : width // 2].sum(), yellow[:, width // 2 : width].sum()
        assert left > 0 and right > 0 and left > right, (testid, left, right)  # "R" has more ink than "L"
    if page.get_by_test_id("no-tumour-warning").count() == 0:
        assert "max tumour area" in page.get_by_test_id("slice-heading").inner_text()
    # after the session is gone, the login brings the user back to the page asked for
    page.context.clear_cookies()
    page.goto(case_url)
    _login(page, site)
    page.wait_for_url(case_url)
    assert page.get_by_test_id("job-state").inner_text() == "succeeded"
    page.goto(site.url + "/cases")
    page.screenshot(path=str(ARTIFACTS / "cases-markers.png"), full_page=True)
    case_id = case_url.rsplit("/", 1)[1]
    refer = page.get_by_test_id(f"refer-{case_id}").inner_text()
    assert refer in ("refer", "stands")  # the tiny model has no assessed threshold: "refer"
    # delete asks first; cancel keeps the case, confirming removes it
    page.goto(case_url)
    page.get_by_test_id("delete-case").click()
    page.wait_for_url("**/delete")
    assert "cannot be undone" in page.get_by_test_id("delete-question").inner_text()
    page.screenshot(path=str(ARTIFACTS / "delete-confirm.png"), full_page=True)
    page.get_by_test_id("cancel-delete").click()
    page.wait_for_url(case_url)
    page.get_by_test_id("delete-case").click()
    page.get_by_test_id("confirm-delete").click()
    page.wait_for_url("**/cases")
    assert page.get_by_test_id(f"refer-{case_id}").count() == 0


def test_result_wording_no_tumour_warnings_and_model_card(site, page):
    """Issue 19, 3-5 as a reader sees them: refer (never "confident enough" without an assessed
    threshold), the no-tumour notice once under the class and a heading without "tumour outline",
    each warning once without the case ID, the age not used, the model card rendered."""
    from radpath.web.db import engine_for
    from radpath.web.settings import load_settings
    from tests.web.test_result_text import SYNTHETIC, result_of, store_result

    settings = load_settings(data_dir=site.data)
    case_id = "c" * 32
    swap = f"{case_id}: FLAIR and T2 look swapped: 900 voxels are bright on the FLAIR file and dark on the T2 file"
    warnings = [
        {"code": "no-tumour", "message": f"{case_id}: no FLAIR/T2-hyperintense lesion found; slice 20 is the centre"},
        {"code": "swap-flair-t2", "message": swap},
        {"code": "swap-flair-t2", "message": swap},
        {"code": "resampled", "message": f"{case_id}: not on the 1 mm BraTS grid: voxel size 1 x 1 x 3 mm"},
    ]
    reasons = [f"input warning {w['code']}: {w['message']}" for w in warnings[:2]]
    result = result_of(tumor_found=False, refer=True, refer_reasons=reasons, warnings=warnings, refer_threshold=None)
    store_result(engine_for(settings.db_url), settings.cases_dir(), result, age=15000, case_id=case_id)
    page.goto(f"{site.url}/cases/{case_id}")
    _login(page, site)
    page.wait_for_url(f"**/cases/{case_id}")
    page.locator("details summary").click()  # open the model card
    page.screenshot(path=str(ARTIFACTS / "result-no-tumour-warnings-card.png"), full_page=True)
    text = page.locator("main").inner_text()
    assert case_id not in text and "Confident enough" not in text and "Refer: not sure" in text
    assert text.count("No tumour was found") == 1 and "the predicted class above is unreliable" in text
    assert "the class below" not in text and text.count("FLAIR and T2 look swapped") == 1
    heading = page.get_by_test_id("slice-heading").inner_text()
    assert "no tumour found" in heading and "max tumour area" not in heading and "outline" not in heading
    assert "was given but not used" in page.get_by_test_id("age-use").inner_text()
    card = page.get_by_test_id("model-card")
    assert card.locator("h1").inner_text() == "Model card" and card.locator("table td").count() == 2
    assert card.locator("script").count() == 0 and "<script>" in card.inner_text()  # shown as text, not run
    assert text.count(SYNTHETIC) == 1
    page.goto(site.url + "/cases")
    assert page.get_by_test_id(f"refer-{case_id}").inner_text() == "refer"
    assert page.get_by_test_id(f"warnings-{case_id}").inner_text() == "3 warnings"
