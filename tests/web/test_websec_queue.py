"""Fairness of the job queue (issue 19, item 10) and what it says about unfinished cases (item 11):
round-robin between users, a per-user cap, release on shutdown, retry notes; SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from radpath.web import auth, jobs
from radpath.web.db import engine_for
from tests.web.conftest import PASSWORD


def _user(engine, name: str) -> int:
    return auth.add_user(engine, f"{name}{time.monotonic_ns() % 10**9}", PASSWORD)


def _enqueue(engine, owner: int, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        case_id = f"{tag}{i:031x}"[:32]
        jobs.enqueue(engine, case_id, owner, {"flair": "f.nii.gz"}, None)
        ids.append(case_id)
        time.sleep(0.002)  # distinct created_at
    return ids


def test_one_users_backlog_does_not_hold_back_another_user(db_url):
    engine = engine_for(db_url)
    heavy, light = _user(engine, "heavy"), _user(engine, "light")
    heavy_ids = _enqueue(engine, heavy, 12, "a")
    light_ids = _enqueue(engine, light, 2, "b")  # queued after all twelve
    first = jobs.claim(engine, "w1", 30, 2)
    second = jobs.claim(engine, "w2", 30, 2)
    # heavy's oldest goes first (it was first); then light's, although eleven of heavy's are older
    assert (first.case_id, second.case_id) == (heavy_ids[0], light_ids[0])
    for job in (first, second):
        assert jobs.finish(engine, job, {"class": "A"})
    order = []
    while (c := jobs.claim(engine, "w", 30, 2)) is not None:
        order.append(c.case_id)
        assert jobs.finish(engine, c, {"class": "A"})
    assert order[:2] == [heavy_ids[1], light_ids[1]] and order[2:] == heavy_ids[2:]


def test_a_user_with_a_running_case_waits_behind_a_user_with_none(db_url):
    engine = engine_for(db_url)
    heavy, light = _user(engine, "heavy"), _user(engine, "light")
    heavy_ids = _enqueue(engine, heavy, 3, "c")
    running = jobs.claim(engine, "w1", 30, 2)
    assert running.case_id == heavy_ids[0]
    light_ids = _enqueue(engine, light, 1, "d")
    assert jobs.claim(engine, "w2", 30, 2).case_id == light_ids[0]  # heavy already has one running


def test_per_user_cap_on_unfinished_cases_with_a_clear_message(db_url):
    engine = engine_for(db_url)
    busy, other = _user(engine, "busy"), _user(engine, "other")
    _enqueue(engine, busy, 3, "e")
    jobs.check_capacity(engine, other, 3)  # other users are not affected
    with pytest.raises(jobs.QueueFullError, match=r"you already have 3 cases waiting .*at most 3 per user"):
        jobs.check_capacity(engine, busy, 3)
    with pytest.raises(jobs.QueueFullError):
        jobs.enqueue(engine, "f" * 32, busy, {}, None, max_queued=3)
    done = jobs.claim(engine, "w", 30, 2)  # a finished case frees a place
    assert jobs.finish(engine, done, {"class": "O"})
    jobs.enqueue(engine, "f" * 32, busy, {}, None, max_queued=3)


def test_release_puts_the_case_back_without_using_an_attempt(db_url):
    engine = engine_for(db_url)
    owner = _user(engine, "rel")
    (case_id,) = _enqueue(engine, owner, 1, "9")
    job = jobs.claim(engine, "stopping", 30, 2)
    assert jobs.release(engine, job)
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == "queued" and case["attempts"] == 0 and case["lease_owner"] is None
    again = jobs.claim(engine, "next", 30, 2)
    assert again.case_id == case_id and again.attempt == 1
    assert not jobs.release(engine, job)  # not ours any more


def test_the_page_says_when_a_case_is_retried_or_waits_for_the_model_server(db_url):
    engine = engine_for(db_url)
    owner = _user(engine, "notes")
    first, second = _enqueue(engine, owner, 2, "8")
    job = jobs.claim(engine, "dies", lease_seconds=0.2, max_attempts=2)
    assert jobs.status_line(engine, jobs.get(engine, first, owner)) is None
    time.sleep(0.3)  # its worker stopped renewing
    assert "stopped; the case will be retried" in jobs.status_line(engine, jobs.get(engine, first, owner))
    retried = jobs.claim(engine, "next", 30, 2)
    assert retried.case_id == job.case_id and retried.attempt == 2
    line = jobs.status_line(engine, jobs.get(engine, first, owner))
    assert "being retried (attempt 2 of 2)" in line
    assert jobs.set_note(engine, retried, jobs.WAITING_NOTE + " (not answering since 07:00 UTC)")
    assert jobs.status_line(engine, jobs.get(engine, first, owner)).startswith("waiting for the model server")
    queued_behind = jobs.status_line(engine, jobs.get(engine, second, owner))
    assert queued_behind.startswith("waiting for the model server") and "kept" in queued_behind
    assert jobs.finish(engine, retried, {"class": "G"})
    case = jobs.get(engine, first, owner)
    assert case["note"] is None and jobs.status_line(engine, case) is None


def test_over_http_a_full_queue_is_refused_with_a_clear_message(settings, users, small_case):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from radpath.web.app import create_app
    from tests.web.conftest import csrf_of, login, upload_files

    with TestClient(create_app(replace(settings, max_queued_per_user=2))) as c:
        assert login(c).status_code == 303
        csrf = csrf_of(c.get("/upload").text)
        assert [upload_files(c, small_case, csrf).status_code for _ in range(2)] == [303, 303]
        r = upload_files(c, small_case, csrf)
        assert r.status_code == 429 and "you already have 2 cases waiting" in r.text and "at most 2 per user" in r.text
        api = c.post(
            "/api/cases",
            files={s: (p.name, p.read_bytes()) for s, p in small_case.items()},
            headers={"x-csrf-token": csrf},
        )
        assert api.status_code == 429 and "at most 2 per user" in api.json()["detail"]
        assert len(c.get("/api/cases").json()) == 2
        other = TestClient(c.app)
        assert login(other, "bob").status_code == 303  # another user still uploads
        assert upload_files(other, small_case, csrf_of(other.get("/upload").text)).status_code == 303
