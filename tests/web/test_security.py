"""Security of the web app (in-process, no browser): deny by default, sessions, CSRF, throttling,
cross-user access, hostile and malformed uploads. Every rejection is a 4xx with a clear message,
never a 5xx, and leaves nothing queued or on disk."""

from __future__ import annotations

import gzip
import statistics
import time
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from radpath.web import audit, jobs
from radpath.web.app import SESSION_COOKIE, create_app
from tests.web.conftest import PASSWORD, csrf_of, login, upload_files

PUBLIC = {"/", "/login", "/api/token", "/healthz", "/vendor/niivue.js", "/demo/brain.nii.gz"}
HTML = {"accept": "text/html"}


def _nothing_left(settings, engine):
    assert jobs.counts(engine) == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0}
    staging = settings.staging_dir()
    assert not staging.exists() or not any(staging.iterdir())
    cases = settings.cases_dir()
    assert not cases.exists() or not any(cases.iterdir())


def _logged_in(client, user="alice"):
    assert login(client, user).status_code == 303
    return csrf_of(client.get("/upload").text)


def test_every_route_but_the_public_ones_needs_a_session(client):
    checked = 0
    for route in iter_route_contexts(client.app.routes):  # FastAPI >= 0.16x: included routers are not flattened
        if not isinstance(route.original_route, APIRoute) or route.path in PUBLIC:
            continue
        path = route.path.replace("{case_id}", "0" * 32).replace("{seq}", "flair").replace("{name}", "mask.nii.gz")
        for method in route.methods - {"HEAD"}:
            for headers in (HTML, {"accept": "application/json"}):
                r = client.request(method, path, headers=headers, follow_redirects=False)
                assert r.status_code == 401, (method, path, r.status_code)
                assert "log in" in r.text or "token" in r.text
                checked += 1
    assert checked >= 2 * 14
    assert client.get("/").status_code == 200 and client.get("/healthz").json() == {"status": "ok"}


def test_login_issues_a_new_session_and_logout_ends_it_on_the_server(client):
    client.cookies.set(SESSION_COOKIE, "attacker-chosen-value", domain="testserver.local")
    r = login(client)
    assert r.status_code == 303 and r.headers["location"] == "/cases"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie  # plain HTTP here
    token = r.cookies.get(SESSION_COOKIE)
    assert token and token != "attacker-chosen-value"
    assert client.get("/cases", headers=HTML).status_code == 200
    second = login(client)  # a new login never reuses the old session, and ends it
    kept = second.cookies.get(SESSION_COOKIE)
    assert second.status_code == 303 and kept != token
    stale = TestClient(client.app, cookies={SESSION_COOKIE: token})
    assert stale.get("/cases", headers=HTML).status_code == 401
    csrf = csrf_of(client.get("/cases", headers=HTML).text)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(client.app, cookies={SESSION_COOKIE: kept})
    assert replay.get("/cases", headers=HTML).status_code == 401


def test_secure_cookie_over_https(settings, users):
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        r = login(c)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_idle_and_absolute_timeouts(settings, users):
    for field in ("session_idle_seconds", "session_absolute_seconds"):
        app = create_app(replace(settings, **{field: 1}))
        with TestClient(app) as c:
            login(c)
            assert c.get("/cases", headers=HTML).status_code == 200
            time.sleep(1.3)
            assert c.get("/cases", headers=HTML).status_code == 401


def test_csrf_is_required_for_every_state_change(client, settings, users, small_case):
    csrf = _logged_in(client)
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False).status_code == 403
    assert (
        client.post(
            "/logout", data={"csrf_token": csrf}, headers={"origin": "https://evil.example"}, follow_redirects=False
        ).status_code
        == 403
    )
    r = upload_files(client, small_case, csrf=None)
    assert r.status_code == 403 and "CSRF" in r.text
    _nothing_left(settings, users)
    assert client.delete(f"/api/cases/{'0' * 32}").status_code == 403  # cookie auth on the API needs the header too
    fresh = TestClient(client.app)
    fresh.get("/login")
    r = fresh.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403


def test_login_throttling_looks_the_same_for_unknown_users(client, settings):
    def attempt(user, password):
        t0 = time.perf_counter()
        r = login(client, user, password)
        return r, time.perf_counter() - t0

    wrong, unknown = [], []
    for _ in range(settings.login_max_failures):
        r1, t1 = attempt("alice", "not the password")
        r2, t2 = attempt("nobody", "not the password")
        assert r1.status_code == r2.status_code == 401
        assert "invalid user name or password" in r1.text and "invalid user name or password" in r2.text
        wrong.append(t1)
        unknown.append(t2)
    ratio = statistics.median(wrong) / statistics.median(unknown)
    assert 0.5 < ratio < 2.0, (wrong, unknown)
    r_known, _ = attempt("alice", PASSWORD)  # right password, but the account is throttled now
    r_unknown, _ = attempt("nobody", PASSWORD)
    assert r_known.status_code == r_unknown.status_code == 429
    assert "too many failed logins" in r_known.text and r_known.headers["retry-after"]
    assert login(client, "bob").status_code == 303  # other accounts are unaffected
    outcomes = [e["outcome"] for e in audit.entries(client.app.state.engine) if e["action"] == "login"]
    assert outcomes.count("failed") == 2 * settings.login_max_failures and "throttled" in outcomes
    assert all(
        "not the password" not in str(e) and PASSWORD not in str(e) for e in audit.entries(client.app.state.engine)
    )


def test_another_users_case_is_a_404_everywhere(client, settings, users, small_case):
    csrf = _logged_in(client, "alice")
    r = upload_files(client, small_case, csrf)
    assert r.status_code == 303
    case_id = r.headers["location"].rsplit("/", 1)[1]
    other = TestClient(client.app)
    login(other, "bob")
    bob_csrf = csrf_of(other.get("/upload").text)
    for path in (
        f"/cases/{case_id}",
        f"/cases/{case_id}/result.json",
        f"/cases/{case_id}/images/flair.png",
        f"/cases/{case_id}/volumes/mask.nii.gz",
        f"/cases/{case_id}/volumes/flair.nii.gz",
        f"/api/cases/{case_id}",
    ):
        assert other.get(path, headers=HTML).status_code == 404, path
    assert other.post(f"/cases/{case_id}/delete", data={"csrf_token": bob_csrf}).status_code == 404
    assert other.delete(f"/api/cases/{case_id}", headers={"x-csrf-token": bob_csrf}).status_code == 404
    assert other.get("/api/cases").json() == []
    assert client.get(f"/api/cases/{case_id}").json()["state"] == "queued"  # untouched


def test_delete_removes_files_and_result_but_keeps_the_audit(client, settings, users, small_case):
    csrf = _logged_in(client)
    case_id = upload_files(client, small_case, csrf).headers["location"].rsplit("/", 1)[1]
    assert (settings.cases_dir() / case_id / "input").is_dir()
    assert client.post(f"/cases/{case_id}/delete", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert not (settings.cases_dir() / case_id).exists()
    assert client.get(f"/cases/{case_id}", headers=HTML).status_code == 404
    actions = [(e["action"], e["case_id"]) for e in audit.entries(users)]
    assert ("upload", case_id) in actions and ("delete", case_id) in actions


@pytest.mark.parametrize(
    "name, status, message",
    [
        ("../../x.nii.gz", 400, "file name not accepted"),
        ("a\x00b.nii.gz", 400, "file name not accepted"),
        ("x" * 293 + ".nii.gz", 400, "file name not accepted"),
        ('"><svg onload=alert(1)>', 415, "expected a NIfTI file"),
    ],
)
def test_hostile_file_names_are_refused(client, settings, users, small_case, name, status, message):
    csrf = _logged_in(client)
    r = upload_files(client, small_case, csrf, names={"t1": name})
    assert r.status_code == status and message in r.text
    assert "<svg onload" not in r.text
    _nothing_left(settings, users)


def test_a_markup_file_name_is_shown_escaped(client, small_case):
    csrf = _logged_in(client)
    r = upload_files(client, small_case, csrf, names={"flair": '"><svg onload=alert(1)>.nii.gz'})
    assert r.status_code == 303
    page = client.get(r.headers["location"], headers=HTML).text
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;.nii.gz" in page


def _nifti(path, data, affine=None, gz=True):
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    nib.save(img, str(path))
    return path


@pytest.fixture
def broken(tmp_path, small_case):
    """Deliberately broken variants of the small case: {name: (files, expected status, message)}."""
    flair = nib.load(str(small_case["flair"]))
    good = np.asanyarray(flair.dataobj)
    out = {}
    trunc = tmp_path / "trunc_flair.nii.gz"
    trunc.write_bytes(small_case["flair"].read_bytes()[: small_case["flair"].stat().st_size // 2])
    out["truncated gzip"] = ({**small_case, "flair": trunc}, 422, "flair")
    png = tmp_path / "picture.nii.gz"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    out["wrong type"] = ({**small_case, "t2": png}, 422, "nifti")
    nan = good.astype(np.float32)
    nan[10, 10, 10] = np.nan
    out["NaN voxels"] = ({**small_case, "t1": _nifti(tmp_path / "nan.nii.gz", nan, flair.affine)}, 422, "nan")
    small = _nifti(tmp_path / "small.nii.gz", good[:-4].copy(), flair.affine)
    out["mismatched shapes"] = ({**small_case, "t1ce": small}, 422, "shape")
    shifted = flair.affine.copy()
    shifted[0, 3] += 5
    out["mismatched affines"] = (
        {**small_case, "t1ce": _nifti(tmp_path / "shift.nii.gz", good, shifted)},
        422,
        "affine",
    )
    absurd = nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    absurd.header.set_data_shape((30000, 8, 8))
    path = tmp_path / "absurd.nii"
    path.write_bytes(absurd.header.binaryblock + b"\x00" * 4 + bytes(1024))
    out["absurd header"] = ({**small_case, "flair": path}, 422, "shape")
    bomb_hdr = nib.Nifti1Header()
    bomb_hdr.set_data_shape((1000, 1000, 200))
    bomb_hdr.set_data_dtype(np.float64)
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb") as f:  # 1.6 GB of zeros declared, a few MB compressed
        f.write(bomb_hdr.binaryblock + b"\x00" * 4)
        zeros = bytes(8 * 1024 * 1024)
        for _ in range(4):
            f.write(zeros)
    out["decompression bomb"] = ({**small_case, "t2": bomb}, 413, "at most")
    return out


def test_malformed_uploads_are_4xx_with_a_clear_message_and_nothing_queued(client, settings, users, broken):
    csrf = _logged_in(client)
    for what, (files, status, message) in broken.items():
        r = upload_files(client, files, csrf)
        assert r.status_code == status, (what, r.status_code, r.text[-400:])
        text = r.text.lower()
        field = next(seq for seq, p in files.items() if "Radiology" not in str(p))  # the broken one
        assert message.lower() in text and f"{field} (" in text, (
            what,
            r.text[-600:],
        )  # names the field and the problem
        _nothing_left(settings, users)
    r = client.post("/upload", data={"csrf_token": csrf, "flair": "not a file"}, headers=HTML)
    assert r.status_code == 415
    r = client.post(
        "/upload",
        content=b'--xyz\r\nContent-Disposition: form-data; name="flair"; filename="a.nii"\r\n\r\nabc',
        headers={**HTML, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert 400 <= r.status_code < 500
    missing = {k: v for k, v in broken["wrong type"][0].items() if k != "t2"}
    r = upload_files(client, missing, csrf)
    assert r.status_code == 400 and "missing t2" in r.text
    _nothing_left(settings, users)


def test_oversized_uploads_are_refused_while_streaming(settings, users, small_case):
    with TestClient(create_app(replace(settings, max_upload_bytes=50_000))) as c:
        csrf = _logged_in(c)
        r = upload_files(c, small_case, csrf)
        assert r.status_code == 413 and "too large" in r.text
        body = iter(
            [b'--b\r\nContent-Disposition: form-data; name="flair"; filename="f.nii"\r\n\r\n'] + [bytes(10_000)] * 20
        )
        r = c.post("/upload", content=body, headers={**HTML, "content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413  # no Content-Length: stopped by the running count
        _nothing_left(settings, users)


def test_json_api_with_a_token(client, settings, small_case):
    assert client.post("/api/token", json={"username": "alice", "password": "wrong"}).status_code == 401
    token = client.post("/api/token", json={"username": "alice", "password": PASSWORD}).json()["token"]
    api = TestClient(client.app, headers={"authorization": f"Bearer {token}"})
    spec = api.get("/api/openapi.json").json()
    assert {"/api/cases", "/api/cases/{case_id}", "/api/token"} <= set(spec["paths"])
    files = {seq: (p.name, p.read_bytes()) for seq, p in small_case.items()}
    r = api.post("/api/cases", files=files, data={"age_days": "20000"})  # a bearer token needs no CSRF token
    assert r.status_code == 202
    case_id = r.json()["id"]
    assert api.get(f"/api/cases/{case_id}").json()["state"] == "queued"
    assert [c["id"] for c in api.get("/api/cases").json()] == [case_id]
    assert api.delete(f"/api/cases/{case_id}").status_code == 204
    assert api.get(f"/api/cases/{case_id}").status_code == 404
    assert api.post("/api/logout").status_code == 204
    assert api.get("/api/cases").status_code == 401


def test_uploads_interrupted_by_a_crash_are_swept_at_start(settings, users):
    import os

    from radpath.web.uploads import sweep_staging

    old = settings.staging_dir() / "deadbeef"
    old.mkdir(parents=True)
    (old / "flair.nii.gz").write_bytes(b"partial")
    fresh = settings.staging_dir() / "inflight"
    fresh.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sweep_staging(settings) == 1
    assert not old.exists() and fresh.exists()
