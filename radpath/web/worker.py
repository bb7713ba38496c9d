"""Workers: take a job from the database, classify through the model server, store one result.

`radpath web-worker` runs them alone (scale them apart from the site); `radpath web --workers N`
starts N of them next to the site. A heartbeat thread renews the lease while a case is classified;
a worker killed mid-job simply stops renewing, and another worker takes the job over after the lease
expires (see `jobs`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from radpath.contract.errors import RadPathError
from radpath.preprocess import SEQUENCES, load_case

from . import audit, jobs
from .db import engine_for
from .settings import Settings

log = logging.getLogger(__name__)


def input_files(settings: Settings, case_id: str) -> dict[str, Path]:
    folder = settings.cases_dir() / case_id / "input"
    found = {}
    for seq in SEQUENCES:
        for suffix in (".nii.gz", ".nii"):
            if (folder / f"{seq}{suffix}").is_file():
                found[seq] = folder / f"{seq}{suffix}"
    return found


def classify_job(settings: Settings, job: jobs.Claim, client) -> dict:
    """Load, classify and draw one case; returns the result dict stored on the job row."""
    from radpath.preprocess import case_warnings, find_tumor, tumor_mask

    from .artefacts import write_artefacts
    from .model_card import describe_model

    t0 = time.perf_counter()
    files = input_files(settings, job.case_id)
    case = load_case(files, case_id=job.case_id, age_days=job.age_days)
    result = client.classify_case(case)
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
    if client.can_explain():  # models exported before the `explain` signature have none
        from radpath.client.explain import write_explanation

        explanation = write_explanation(client, case, out / "explanation.png")
        images["explanation"] = "explanation.png"
        explanation["path"] = "explanation.png"
    d = result.as_dict()
    d.pop("case_id", None)
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


def run_one(settings: Settings, engine: sa.Engine, owner: str, client) -> bool:
    """Claim and finish at most one job; False when the queue was empty."""
    job = jobs.claim(engine, owner, settings.lease_seconds, settings.max_attempts)
    if job is None:
        return False
    log.info("worker %s: case %s attempt %d", owner, job.case_id, job.attempt)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job, settings, stop), daemon=True)
    beat.start()
    result, reason = None, None
    try:
        result = classify_job(settings, job, client)
    except RadPathError as exc:
        reason = str(exc).replace(str(settings.cases_dir() / job.case_id / "input") + os.sep, "")
    except Exception as exc:  # a bug: fail the job with a reason rather than retrying forever
        log.exception("case %s: unexpected error", job.case_id)
        reason = f"internal error while classifying ({type(exc).__name__}); the administrators can see the log"
    finally:
        stop.set()
        beat.join()
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


def run_worker(settings: Settings, stop: threading.Event | None = None, once: bool = False) -> None:
    """Poll the queue until `stop` is set (or SIGTERM); `once`: return when the queue is empty."""
    from radpath.client.grpc_client import GlioClient

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = engine_for(settings.db_url)
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"
    with GlioClient(settings.server, settings.model, timeout=settings.classify_timeout) as client:
        while not stop.is_set():
            try:
                busy = run_one(settings, engine, owner, client)
            except sa.exc.OperationalError as exc:  # database restarting: wait, do not die
                log.warning("database unavailable (%s); retrying", exc.orig)
                busy = False
            if once and not busy:
                return
            if not busy:
                stop.wait(settings.poll_seconds)
