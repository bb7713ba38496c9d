"""What the pages say about a result (issue 19, items 3-6), on stored results written here by hand so
each wording rule is checked without a model: refer and "confident enough", each warning once and
without the internal case ID, the no-tumour heading, age, the rendered model card, delete and the
return to the page asked for after logging in."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from radpath.web import jobs, model_card
from radpath.web.app import create_app
from radpath.web.db import users as users_table
from radpath.web.login import safe_next
from radpath.web.result_view import present, threshold_assessed
from tests.web.conftest import PASSWORD, csrf_of, login

HTML = {"accept": "text/html"}
CASE_ID = "0123456789abcdef0123456789abcdef"
SYNTHETIC = "Trained on SYNTHETIC data only (simulated MRI): its scores say nothing about clinical accuracy. Synth."
CARD = """# Model card

**Trained and evaluated on SYNTHETIC data**

<script>alert('card')</script> <img src=x onerror=alert(1)>

[click](javascript:alert(1)) [docs](https://example.org/card)

| split | score |
|---|---|
| held-out | 0.61 |
"""


def result_of(**changes) -> dict:
    r = {
        "class": "A",
        "probabilities": {"A": 0.39, "O": 0.29, "G": 0.32},
        "refer": False,
        "refer_reasons": [],
        "refer_threshold": 0.35,
        "slice_index": 20,
        "tumor_found": True,
        "warnings": [],
        "age_used": False,
        "model": "glioma",
        "model_version": 3,
        "seconds": {},
        "images": {},
        "artefacts": "result-1",
        "explanation": None,
        "model_info": {"card_markdown": CARD, "data_statement": SYNTHETIC, "synthetic": True},
    }
    r.update(changes)
    return r


def _store(client, settings, result: dict, age: float | None = None, case_id: str = CASE_ID) -> str:
    return store_result(client.app.state.engine, settings.cases_dir(), result, age, case_id)


def store_result(engine, cases_dir, result: dict, age: float | None = None, case_id: str = CASE_ID) -> str:
    """A finished case of alice's with `result`, as a worker would have left it (files: a FLAIR only)."""
    with engine.connect() as conn:
        uid = conn.execute(sa.select(users_table.c.id).where(users_table.c.username == "alice")).scalar_one()
    jobs.enqueue(engine, case_id, uid, {s: f"{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")}, age)
    claim = jobs.claim(engine, "test", 60, 2)
    assert jobs.finish(engine, claim, result)
    folder = cases_dir / case_id / "input"
    folder.mkdir(parents=True)
    (folder / "flair.nii.gz").write_bytes(b"not read by these tests")
    return case_id


def _page(client, settings, result: dict, age: float | None = None) -> str:
    assert login(client).status_code == 303
    case_id = _store(client, settings, result, age)
    page = client.get(f"/cases/{case_id}", headers=HTML)
    assert page.status_code == 200
    return page.text


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- 3: refer and "confident enough"
@pytest.mark.parametrize("threshold", [None, 0.0, 2.0])
def test_never_confident_enough_when_the_threshold_was_not_assessed(client, settings, threshold):
    html = _page(client, settings, result_of(refer_threshold=threshold))
    assert "Confident enough" not in html
    refer = re.search(r'data-testid="refer"[^>]*>(.*?)</div>', html, re.S).group(1)
    assert "Refer: not sure" in refer and "confidence not assessed" in refer


def test_confident_enough_only_with_an_assessed_threshold_and_no_reason(client, settings):
    html = _page(client, settings, result_of(probabilities={"A": 0.8, "O": 0.1, "G": 0.1}, refer_threshold=0.62))
    assert "Confident enough to stand" in html and "0.62" in html and "Refer: not sure" not in html
    assert threshold_assessed(0.62) and not threshold_assessed(0.0) and not threshold_assessed(2.0)
    assert not threshold_assessed(None)


def test_the_contracts_reasons_are_shown_as_they_are(client, settings):
    reason = "low confidence: top probability 0.39 is below the model's refer threshold 0.60 (...)"
    html = _page(client, settings, result_of(refer=True, refer_reasons=[reason], refer_threshold=0.6))
    assert "Refer: not sure" in html and "low confidence: top probability 0.39" in html


def test_my_cases_marks_refer_and_warnings(client, settings):
    assert login(client).status_code == 303
    warn = [{"code": "resampled", "message": f"{'a' * 32}: not on the 1 mm BraTS grid"}]
    _store(client, settings, result_of(refer_threshold=None, warnings=warn), case_id="a" * 32)
    _store(client, settings, result_of(probabilities={"A": 0.9, "O": 0.05, "G": 0.05}), case_id="b" * 32)
    html = client.get("/cases", headers=HTML).text
    refer_a = re.search(rf'data-testid="refer-{"a" * 32}">(.*?)</td>', html, re.S).group(1)
    refer_b = re.search(rf'data-testid="refer-{"b" * 32}">(.*?)</td>', html, re.S).group(1)
    assert "refer" in refer_a and "refer" not in refer_b and "stands" in refer_b
    assert "1 warning" in re.search(rf'data-testid="warnings-{"a" * 32}">(.*?)</td>', html, re.S).group(1)
    assert "warning" not in re.search(rf'data-testid="warnings-{"b" * 32}">(.*?)</td>', html, re.S).group(1)


# ---------------------------------------------------------------- 4: warnings once, no case ID
def test_each_warning_once_without_the_case_id(client, settings):
    swap = f"{CASE_ID}: FLAIR and T2 look swapped: 900 voxels are bright on the FLAIR file"
    warnings = [
        {"code": "swap-flair-t2", "message": swap},
        {"code": "swap-flair-t2", "message": swap},
        {"code": "resampled", "message": f"{CASE_ID}: not on the 1 mm BraTS grid"},
    ]
    reasons = [f"input warning swap-flair-t2: {swap}"]
    html = _page(client, settings, result_of(refer=True, refer_reasons=reasons, warnings=warnings))
    text = _text(html)
    assert CASE_ID not in text
    assert text.count("FLAIR and T2 look swapped") == 1 and text.count("not on the 1 mm BraTS grid") == 1
    assert "input warnings that make any answer unreliable (see below): swap-flair-t2" in text
    assert "the class below" not in text


def test_no_tumour_heading_and_one_notice(client, settings):
    warnings = [{"code": "no-tumour", "message": f"{CASE_ID}: no FLAIR/T2-hyperintense lesion found; slice 20"}]
    reasons = [f"input warning no-tumour: {warnings[0]['message']}"]
    html = _page(client, settings, result_of(tumor_found=False, refer=True, refer_reasons=reasons, warnings=warnings))
    text = _text(html)
    heading = _text(re.search(r'data-testid="slice-heading">(.*?)</h2>', html, re.S).group(1))
    assert "max tumour area" not in heading and "outline" not in heading and "no tumour found" in heading
    assert text.count("No tumour was found") == 1 and "no FLAIR/T2-hyperintense lesion found" not in text
    assert "the predicted class above is unreliable" in text and CASE_ID not in text


def test_present_without_a_result_is_empty():
    assert present(None) == {}


# ---------------------------------------------------------------- 5: age, model card, data statement
def test_age_given_but_not_used_is_said(client, settings):
    text = _text(_page(client, settings, result_of(age_used=False), age=15000))
    assert "Age (15000 days) was given but not used" in text


def test_age_used_is_said(client, settings):
    text = _text(_page(client, settings, result_of(age_used=True), age=15000))
    assert "Age (15000 days) was used by the model" in text


def test_model_card_is_rendered_sanitised_and_the_data_statement_shown_once(client, settings):
    html = _page(client, settings, result_of())
    card = re.search(r'data-testid="model-card">(.*?)</div>', html, re.S).group(1)
    assert "<h1>Model card</h1>" in card and "<strong>Trained and evaluated on SYNTHETIC data</strong>" in card
    assert "<table>" in card and "<td>held-out</td>" in card
    assert "<script" not in card and "<img" not in card and "&lt;script&gt;" in card
    assert 'href="javascript' not in card and '<a href="https://example.org/card">docs</a>' in card
    assert html.count(SYNTHETIC) == 1


def _fake_store(root, inputs):
    extra = root / "glioma" / "4" / "assets.extra"
    extra.mkdir(parents=True)
    (root / "glioma" / "4" / "saved_model.pb").write_bytes(b"")
    (extra / "radpath.json").write_text(json.dumps({"inputs": inputs}))
    return root


@pytest.mark.parametrize(
    "inputs, asked, said", [(["image"], False, "not asked for"), (["image", "age_days"], True, "the model uses it")]
)
def test_upload_form_asks_for_age_only_when_the_model_takes_it(settings, users, tmp_path, inputs, asked, said):
    model_card._AGE_CACHE.clear()
    s = replace(settings, model_base=_fake_store(tmp_path / "store", inputs))  # server 127.0.0.1:1 does not answer
    with TestClient(create_app(s)) as c:
        login(c)
        html = c.get("/upload", headers=HTML).text
    assert ('name="age_days"' in html) == asked and said in html


def test_upload_form_says_when_it_cannot_tell(client):
    model_card._AGE_CACHE.clear()
    login(client)
    html = client.get("/upload", headers=HTML).text
    assert 'name="age_days"' in html and "used only if the served model takes age" in html


# ---------------------------------------------------------------- 6: delete asks; login returns
def test_delete_asks_for_confirmation_first(client, settings):
    html = _page(client, settings, result_of())
    assert f'href="/cases/{CASE_ID}/delete"' in html and "<script>" not in html
    confirm = client.get(f"/cases/{CASE_ID}/delete", headers=HTML)
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert client.get(f"/cases/{CASE_ID}", headers=HTML).status_code == 200  # asking deleted nothing
    r = client.post(f"/cases/{CASE_ID}/delete", data={"csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    assert r.status_code == 303 and client.get(f"/cases/{CASE_ID}", headers=HTML).status_code == 404


def test_after_a_401_the_login_returns_to_the_page_asked_for(client):
    asked = f"/cases/{CASE_ID}?tab=model"
    r = client.get(asked, headers=HTML)
    assert r.status_code == 401 and 'name="next"' in r.text
    token = csrf_of(r.text)
    next_value = re.search(r'name="next" value="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert next_value == asked
    done = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": next_value},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == asked


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "cases",
    ],
)
def test_the_return_path_is_never_another_site(client, target):
    assert safe_next(target) is None
    token = csrf_of(client.get("/login?next=" + target.replace("\t", "%09")).text)
    done = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/cases"


# ---------------------------------------------------------------- 2: one file in two slots (the API)
def test_the_api_refuses_one_file_in_two_slots(client, small_case):
    token = client.post("/api/token", json={"username": "alice", "password": PASSWORD}).json()["token"]
    files = {seq: (p.name, p.read_bytes()) for seq, p in {**small_case, "t1ce": small_case["t1"]}.items()}
    r = client.post("/api/cases", files=files, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "same voxels as the t1 file" in r.json()["detail"]
    assert "t1ce" in r.json()["detail"]


def test_a_failure_reason_is_shown_without_the_case_id(client, settings):
    assert login(client).status_code == 303
    engine = client.app.state.engine
    with engine.connect() as conn:
        uid = conn.execute(sa.select(users_table.c.id).where(users_table.c.username == "alice")).scalar_one()
    jobs.enqueue(engine, CASE_ID, uid, {"flair": "f.nii.gz"}, None)
    jobs.finish(engine, jobs.claim(engine, "test", 60, 2), reason=f"{CASE_ID}: the image is constant")
    text = _text(client.get(f"/cases/{CASE_ID}", headers=HTML).text)
    assert "Could not classify this case: the image is constant" in text and CASE_ID not in text


@pytest.mark.parametrize(
    "found, code, target, said",
    [
        (True, None, "the tumour", "statistics of the whole found tumour in 3-D"),
        (
            False,
            "tumour-uncertain",
            "the most suspicious region",
            "statistics of the most suspicious region (no confident tumour) in 3-D",
        ),
        (False, "no-tumour", "the brain's centre (no tumour found)", "none was found, so they told it nothing"),
    ],
)
def test_explanation_caption_names_what_the_zoomed_view_and_the_statistics_show(
    client, settings, found, code, target, said
):
    """The explanation's bottom row is centred on the tumour only when one was found; for a model that reads
    the tumour statistics, the caption never speaks of a found tumour when none was."""
    warnings = [] if code is None else [{"code": code, "message": "m"}]
    explanation = {"path": "explanation.png", "peak_in_tumour": None, "tumor_stats_used": True}
    html = _page(client, settings, result_of(tumor_found=found, warnings=warnings, explanation=explanation))
    caption = _text(re.search(r'data-testid="zoom-target">(.*?)</span>', html, re.S).group(1)).strip()
    assert caption == target.replace("'", "&#39;")
    note = _text(re.search(r'data-testid="stats-note">(.*?)</span>', html, re.S).group(1))
    assert said in note
    assert ("found tumour in 3-D (its size" in note) == found


def test_no_tumour_statistics_note_for_a_model_that_does_not_read_them(client, settings):
    explanation = {"path": "explanation.png", "peak_in_tumour": None, "tumor_stats_used": False}
    assert 'data-testid="stats-note"' not in _page(client, settings, result_of(explanation=explanation))
