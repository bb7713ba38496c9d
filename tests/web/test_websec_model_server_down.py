"""Model server down (issue 19, item 11): the worker keeps the case, retries with growing waits and
says "waiting for the model server"; a transient outage never ends as a raw gRPC error; a worker
stopping meanwhile puts the case back in the queue, and one stopping mid-case finishes it within
the grace period or puts it back (item 13). Real gRPC clients: to a port where nothing listens, and
to the tiny model server behind a switch that refuses the first calls."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace

import pytest

from radpath.web import auth, jobs
from radpath.web.db import engine_for
from radpath.web.worker import run_one
from tests.web.conftest import PASSWORD

NOWHERE = "127.0.0.1:9"  # the discard port: nothing answers gRPC there


@pytest.fixture
def queued(settings, small_case):
    """(settings, engine, owner id, case id) with the small case queued."""
    engine = engine_for(settings.db_url)
    owner = auth.add_user(engine, "carol", PASSWORD)
    case_id = "e" * 32
    folder = settings.cases_dir() / case_id / "input"
    folder.mkdir(parents=True)
    for seq, path in small_case.items():
        shutil.copy(path, folder / f"{seq}.nii.gz")
    jobs.enqueue(engine, case_id, owner, {s: p.name for s, p in small_case.items()}, None)
    return settings, engine, owner, case_id


def _client(target: str):
    from radpath.client.grpc_client import GlioClient

    return GlioClient(target, "glioma", timeout=5, retries=0)


def _in_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_unreachable_server_waits_says_so_then_fails_with_a_plain_message(queued):
    settings, engine, owner, case_id = queued
    settings = replace(settings, model_wait_seconds=3.0, model_retry_max_seconds=1.0)
    with _client(NOWHERE) as client:
        worker = _in_thread(run_one, settings, engine, "w-down", client)
        line = _wait_for(
            lambda: jobs.status_line(engine, jobs.get(engine, case_id, owner)), 30, "the waiting note on the case"
        )
        case = jobs.get(engine, case_id, owner)
        assert case["state"] == "running" and line.startswith("waiting for the model server"), line
        worker.join(60)
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == "failed" and case["note"] is None
    assert "the model server did not answer" in case["reason"] and "upload it again later" in case["reason"]
    for raw in ("UNAVAILABLE", "StatusCode", "failed to connect", "ipv4:", "radpath serve"):
        assert raw not in case["reason"], case["reason"]


def test_a_stopping_worker_releases_the_waiting_case_at_once(queued):
    settings, engine, owner, case_id = queued
    stop = threading.Event()
    with _client(NOWHERE) as client:
        worker = _in_thread(run_one, settings, engine, "w-stop", client, stop)
        _wait_for(lambda: jobs.get(engine, case_id, owner)["note"], 30, "the waiting note")
        t0 = time.monotonic()
        stop.set()
        worker.join(30)
        assert not worker.is_alive() and time.monotonic() - t0 < 3  # released, not waited out
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == "queued" and case["attempts"] == 0 and case["lease_owner"] is None


class _Flaky:
    """A real client whose first `down` model-server calls fail as an outage would."""

    def __init__(self, client, down: int):
        self.client, self.down, self.calls = client, down, 0

    def classify_case(self, case):
        from radpath.client.grpc_client import ServerUnavailableError

        self.calls += 1
        if self.calls <= self.down:
            raise ServerUnavailableError("server 127.0.0.1:1 is unavailable after 1 attempts (connection refused)")
        return self.client.classify_case(case)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_a_server_coming_back_classifies_the_kept_case(queued, model_server, web_model_base):
    settings, engine, owner, case_id = queued
    settings = replace(settings, model_base=web_model_base, model_retry_max_seconds=1.0)
    with _client(model_server) as real:
        flaky = _Flaky(real, down=2)
        worker = _in_thread(run_one, settings, engine, "w-flaky", flaky)
        _wait_for(lambda: jobs.get(engine, case_id, owner)["note"], 30, "the waiting note")
        worker.join(120)
    case = jobs.get(engine, case_id, owner)
    assert flaky.calls == 3 and case["state"] == "succeeded", case["reason"]
    assert case["note"] is None and case["attempts"] == 1 and case["result"]["class"] in "AOG"


@pytest.mark.parametrize("work_s, expected", [(0.5, "succeeded"), (30.0, "queued")])
def test_on_stop_a_case_is_finished_within_the_grace_period_or_put_back(queued, monkeypatch, work_s, expected):
    """SIGTERM mid-case: a case that finishes within the grace period is stored; one that would not
    is released at the deadline (attempt not used up) and the worker returns."""
    from radpath.web import worker

    settings, engine, owner, case_id = queued
    settings = replace(settings, shutdown_grace_seconds=6.0)  # 1 s for the case after the 5 s margin

    def slow_classify(settings, job, client, served, note=None):
        time.sleep(work_s)
        return {"class": "A", "artefacts": "result-1"}

    monkeypatch.setattr(worker, "classify_job", slow_classify)
    monkeypatch.setattr(worker, "private_tree", lambda folder: None)
    stop = threading.Event()
    t = _in_thread(run_one, settings, engine, "w-grace", None, stop)
    _wait_for(lambda: jobs.get(engine, case_id, owner)["state"] == "running", 10, "the claim")
    t0 = time.monotonic()
    stop.set()
    t.join(20)
    assert not t.is_alive() and time.monotonic() - t0 < 3
    case = jobs.get(engine, case_id, owner)
    assert case["state"] == expected and case["attempts"] == (1 if expected == "succeeded" else 0), case
