"""Workers: take a job from the database, classify through the model server, store one result.

`radpath web-worker` runs them alone (scale them apart from the site); `radpath web --workers N`
starts N of them next to the site. A heartbeat thread renews the lease while a case is classified;
a worker killed mid-job simply stops renewing, and another worker takes the job over after the lease
expires (see `jobs`).

An unreachable model server is an outage, not the case's fault: the worker keeps the case and
retries with growing waits (up to `model_retry_max_seconds`), telling the case's page "waiting for
the model server", and fails it with a plain message only after `model_wait_seconds`. On SIGTERM a
worker finishes its case if it can within the grace period, otherwise it puts the case back in the
queue (`jobs.release`) and exits; a worker started by the site also exits when the site does.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from radpath.contract.errors import RadPathError
from radpath.preprocess import SEQUENCES, load_case

from . import audit, jobs, study_upload
from .db import engine_for
from .settings import Settings
from .shutdown_signals import stop_on_signals

log = logging.getLogger(__name__)


def input_files(settings: Settings, case_id: str) -> dict[str, Path]:
    folder = settings.cases_dir() / case_id / "input"
    found = {}
    for seq in SEQUENCES:
        for suffix in (".nii.gz", ".nii"):
            if (folder / f"{seq}{suffix}").is_file():
                found[seq] = folder / f"{seq}{suffix}"
    return found


class ModelServerDownError(RadPathError):
    """The model server did not answer for `model_wait_seconds`: the case fails with this message."""


class Abandoned(Exception):
    """The worker is stopping while the case waits for the model server: release it at once."""


def _transient_errors() -> tuple[type[Exception], ...]:
    from radpath.client.grpc_client import DeadlineError, ModelNotFoundError, ServerUnavailableError

    return ServerUnavailableError, DeadlineError, ModelNotFoundError


def _direct(call):
    return call()


def _no_note(text: str | None) -> None:
    return None


def server_waiter(engine: sa.Engine, settings: Settings, job: jobs.Claim, abandon: threading.Event):
    """`served(call)`: call the model server, and while it is unreachable (UNAVAILABLE, deadline,
    model not loaded yet) wait and retry with doubling waits, saying so on the case's page."""
    transient = _transient_errors()
    state = {"since": None}

    def served(call):
        delay = 1.0
        while True:
            try:
                out = call()
            except transient as exc:
                now = time.time()
                since = state["since"] = state["since"] or now
                if now - since + delay > settings.model_wait_seconds:
                    what = (
                        f"had no model {settings.model!r} loaded"
                        if type(exc).__name__ == "ModelNotFoundError"
                        else "did not answer"
                    )
                    raise ModelServerDownError(
                        f"the model server {what} for {(now - since) / 60:.0f} minutes, so the case was not "
                        "classified; upload it again later, or ask IT to check the model server"
                    ) from None
                log.warning("case %s: model server not answering (%s); next try in %.0f s", job.case_id, exc, delay)
                jobs.set_note(
                    engine,
                    job,
                    f"{jobs.WAITING_NOTE} (not answering since {time.strftime('%H:%M', time.gmtime(since))} UTC); "
                    f"the case is kept and tried again (next try in {delay:.0f} s)",
                )
                if abandon.wait(delay):
                    raise Abandoned from None
                delay = min(delay * 2, settings.model_retry_max_seconds)
                continue
            if state["since"] is not None:
                state["since"] = None
                jobs.set_note(engine, job, None)
            return out

    return served


def classify_job(settings: Settings, job: jobs.Claim, client, served=_direct, note=None) -> dict:
    """Load, classify and draw one case; returns the result dict stored on the job row.
    `served(call)` makes each model-server call (see `server_waiter`); `note(text)` tells the case's
    page what runs (a clinical upload is prepared first: `study_upload`)."""
    from radpath.preprocess import case_warnings, find_tumor, tumor_mask

    from .artefacts import write_artefacts
    from .model_card import describe_model

    t0 = time.perf_counter()
    files, prepared = input_files(settings, job.case_id), None
    if study_upload.needs_prepare(settings.cases_dir() / job.case_id / "input"):
        files, prepared = study_upload.prepare_job(settings.cases_dir() / job.case_id, note or _no_note)
    case = load_case(files, case_id=job.case_id, age_days=job.age_days)
    result = served(lambda: client.classify_case(case))
    tumor = find_tumor(case)
    prefix = f"{job.case_id}: "  # preprocess names the case; on our page the case is known
    warnings = [{**w.as_dict(), "message": w.message.removeprefix(prefix)} for w in case_warnings(case)]
    if not tumor.found and not any(w.get("code") == "no-tumour" for w in warnings):
        warnings.append(
            {
                "code": "no-tumour",
                "message": "no FLAIR/T2-hyperintense lesion found; the slice shown "
                "and classified is the brain's largest slice",
            }
        )
    out_name = f"result-{job.attempt}"
    out = settings.cases_dir() / job.case_id / out_name
    images = write_artefacts(case, tumor.index, tumor_mask(case), out)
    explanation = None
    if served(client.can_explain):  # models exported before the `explain` signature have none
        from radpath.client.explain import write_explanation

        explanation = served(lambda: write_explanation(client, case, out / "explanation.png"))
        images["explanation"] = "explanation.png"
        explanation["path"] = "explanation.png"
    if prepared:
        shutil.copy(settings.cases_dir() / job.case_id / prepared.pop("qc"), out / "prepare_qc.png")
        images[study_upload.QC_IMAGE] = "prepare_qc.png"
    d = result.as_dict()
    d.pop("case_id", None)
    d["prepared"] = prepared
    d.update(
        warnings=warnings,
        images=images,
        explanation=explanation,
        artefacts=out_name,
        tumor_voxels=tumor.voxels,
        shape=list(case.shape),
        model_info=describe_model(settings.model_base, result.model, result.model_version),
    )
    d["seconds"] = {**d.get("seconds", {}), "worker_total": round(time.perf_counter() - t0, 3)}
    return d


def _heartbeat(engine: sa.Engine, job: jobs.Claim, settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.lease_seconds / 3):
        if not jobs.renew(engine, job, settings.lease_seconds):
            log.warning("lost the lease of case %s", job.case_id)
            return


def private_tree(folder: Path) -> None:
    """Results are patient data: folders 0700, files 0600, whatever the process's umask."""
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def run_one(settings: Settings, engine: sa.Engine, owner: str, client, stop: threading.Event | None = None) -> bool:
    """Claim and finish at most one job; False when the queue was empty. When `stop` is set meanwhile,
    the case gets `shutdown_grace_seconds` (less a margin) to finish, then it is released."""
    job = jobs.claim(engine, owner, settings.lease_seconds, settings.max_attempts)
    if job is None:
        return False
    log.info("worker %s: case %s attempt %d", owner, job.case_id, job.attempt)
    stop = stop or threading.Event()
    beat_stop, abandon, done = threading.Event(), threading.Event(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job, settings, beat_stop), daemon=True)
    beat.start()
    outcome: dict = {}
    work = threading.Thread(
        target=_classify,
        args=(
            settings,
            job,
            client,
            server_waiter(engine, settings, job, abandon),
            outcome,
            done,
            lambda text: jobs.set_note(engine, job, text),
        ),
        daemon=True,
    )
    work.start()
    deadline = None
    while not done.wait(0.2):
        if stop.is_set():
            abandon.set()  # a case waiting for the model server is released at once
            deadline = deadline or time.monotonic() + max(1.0, settings.shutdown_grace_seconds - 5)
            if time.monotonic() > deadline:
                outcome["abandoned"] = True
                break
    beat_stop.set()
    beat.join()
    if outcome.get("abandoned"):
        released = jobs.release(engine, job)
        log.warning("worker %s stopping: case %s %s", owner, job.case_id, "put back in the queue" if released else "")
        return True
    result, reason = outcome.get("result"), outcome.get("reason")
    stored = jobs.finish(engine, job, result, reason)
    if not stored and result is not None:  # taken over or deleted meanwhile: keep nothing of ours
        shutil.rmtree(settings.cases_dir() / job.case_id / result["artefacts"], ignore_errors=True)
    if stored:
        audit.record(
            engine,
            "classify",
            "succeeded" if reason is None else "failed",
            case_id=job.case_id,
            detail=reason,
            client=owner,
        )
    return True


def _classify(
    settings: Settings, job: jobs.Claim, client, served, outcome: dict, done: threading.Event, note=None
) -> None:
    """The job thread of `run_one`: fills `outcome` with result, reason or abandoned."""
    try:
        outcome["result"] = classify_job(settings, job, client, served, note)
        private_tree(settings.cases_dir() / job.case_id / outcome["result"]["artefacts"])
    except Abandoned:
        outcome["abandoned"] = True
    except RadPathError as exc:
        outcome["reason"] = str(exc).replace(str(settings.cases_dir() / job.case_id / "input") + os.sep, "")
    except Exception as exc:  # a bug: fail the job with a reason rather than retrying forever
        log.exception("case %s: unexpected error", job.case_id)
        outcome["reason"] = (
            f"internal error while classifying ({type(exc).__name__}); the administrators can see the log"
        )
    finally:
        done.set()


def run_worker(
    settings: Settings, stop: threading.Event | None = None, once: bool = False, parent_pid: int | None = None
) -> None:
    """Poll the queue until `stop` is set (no `stop` given: until SIGTERM/SIGINT); `once`: return when
    the queue is empty.
    `parent_pid`: also stop when that process (the site that started this worker) is gone."""
    from radpath.client.grpc_client import GlioClient

    if stop is None:  # nobody else handles the signals: we do (never `stop.set()` in a handler: see there)
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            stop_on_signals(stop)
    engine = engine_for(settings.db_url)
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"
    with GlioClient(settings.server, settings.model, timeout=settings.classify_timeout) as client:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: the site (pid %d) is gone; stopping", owner, parent_pid)
                return
            try:
                busy = run_one(settings, engine, owner, client, stop)
            except sa.exc.OperationalError as exc:  # database restarting: wait, do not die
                log.warning("database unavailable (%s); retrying", exc.orig)
                busy = False
            if once and not busy:
                return
            if not busy:
                stop.wait(settings.poll_seconds)
