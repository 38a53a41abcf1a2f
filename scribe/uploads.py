"""Recorded files posted over REST: transcribed a window at a time, by a durable job any node can finish.

A long recording is never decoded whole: it is transcribed in windows of `WINDOW_S` seconds, so
peak memory is one window's samples and the engine's work on them, whatever the file's length.
Every stored upload has a job row in the shared database; a node claims it with a lease (like a
stream lease), so a transcription interrupted by a crash is taken over when its lease runs out, or
at once when that node starts again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from scribe.asr import AsrEngine
from scribe.audio import SAMPLE_RATE, AudioLimits, decode_windows
from scribe.config import Mode, Settings
from scribe.encounters import now
from scribe.errors import AudioError, EngineUnavailableError
from scribe.records import PatientContext
from scribe.store import Database
from scribe.store.db import rows_matched
from scribe.store.models import AudioUpload, Encounter, UploadJob
from scribe.transcript import Transcript, concatenated

log = logging.getLogger("scribe.uploads")

# 2 minutes: 8 MB of samples, four of Whisper's 30 s windows. Measured on a 63-minute upload, the server's peak
# grows by ~100 MB with 2-minute windows, ~190 MB with 4 and ~360 MB with 10, for the same speed.
WINDOW_S = 120.0
LABEL = "the upload"  # how messages name the file (never its path)


def transcribe_file(
    engine: AsrEngine, path: Path, limits: AudioLimits, context: PatientContext | None, *, window_s: float = WINDOW_S
) -> Transcript:
    """The file's Transcript, one window at a time (each cut where it is quietest), on the file's clock."""
    parts: list[tuple[float, Transcript]] = []
    duration = 0.0
    for offset, samples in decode_windows(path, limits, window_s=window_s, label=LABEL):
        parts.append((offset, engine.transcribe(samples, context=context)))
        duration = offset + len(samples) / SAMPLE_RATE
    return concatenated(parts, duration)


# ------------------------------------------------------------------------------------------ jobs

JOB_LEASE_S = 60.0  # a node renews every third of it while it works; a dead node's lease runs out in this time
MAX_ATTEMPTS = 3  # the first try, then two retries: a failing engine never loops
RETRY_AFTER_S = (30.0, 120.0)  # wait before the 2nd and the 3rd attempt
STATES = ("transcribing", "done", "failed")


def job_holder(node_id: str) -> str:
    """ "<node id>/<uuid>": which node works on a job, unique per attempt."""
    return f"{node_id}/{uuid.uuid4().hex}"


def create_job(session: Session, upload: AudioUpload, moment: datetime | None = None) -> UploadJob:
    """The upload's transcription job, due now; written in the transaction that records the upload."""
    moment = moment or now()
    job = UploadJob(
        upload_id=upload.id,
        encounter_id=upload.encounter_id,
        state="transcribing",
        attempts=0,
        next_attempt_at=moment,
        created_at=moment,
        updated_at=moment,
    )
    session.add(job)
    session.flush()
    return job


def claim_job(
    session: Session,
    holder: str,
    *,
    job_id: int | None = None,
    ttl_s: float = JOB_LEASE_S,
    moment: datetime | None = None,
) -> int | None:
    """Take a due job (or job `job_id`) whose lease is free or expired; its id, or None.

    Conditional UPDATEs, as for stream leases, so two nodes never hold one job. A job found
    with its attempts used up (its last holder died) is marked failed instead of run again.
    """
    moment = moment or now()
    free = or_(UploadJob.holder.is_(None), UploadJob.lease_until < moment)
    due = [UploadJob.state == "transcribing", UploadJob.next_attempt_at <= moment, free]
    if job_id is not None:
        due.append(UploadJob.id == job_id)
    session.execute(
        update(UploadJob)
        .where(*due, UploadJob.attempts >= MAX_ATTEMPTS)
        .values(
            state="failed",
            holder=None,
            lease_until=None,
            updated_at=moment,
            reason=f"transcription was interrupted {MAX_ATTEMPTS} times (the server stopped while it ran)",
        )
    )
    candidates = session.scalars(select(UploadJob.id).where(*due).order_by(UploadJob.id).limit(10)).all()
    for candidate in candidates:
        claimed = session.execute(
            update(UploadJob)
            .where(UploadJob.id == candidate, *due)
            .values(
                holder=holder,
                lease_until=moment + timedelta(seconds=ttl_s),
                attempts=UploadJob.attempts + 1,
                updated_at=moment,
            )
        )
        if rows_matched(claimed) == 1:
            return candidate
    return None


def renew_job(session: Session, job_id: int, holder: str, *, ttl_s: float = JOB_LEASE_S) -> bool:
    """Extend our lease; False when it is no longer ours."""
    renewed = session.execute(
        update(UploadJob)
        .where(UploadJob.id == job_id, UploadJob.holder == holder, UploadJob.state == "transcribing")
        .values(lease_until=now() + timedelta(seconds=ttl_s))
    )
    return rows_matched(renewed) == 1


def release_node_jobs(session: Session, node_id: str, *, refund_attempt: bool = False) -> int:
    """At start-up: jobs this node held when it stopped (or was killed) are free again at once. A draining node
    hands its jobs back with `refund_attempt`: a planned stop is no failure of the job's."""
    values: dict[str, Any] = {"holder": None, "lease_until": None}
    if refund_attempt:
        values["attempts"] = UploadJob.attempts - 1
    result = session.execute(
        update(UploadJob)
        .where(UploadJob.holder.like(f"{node_id}/%"), UploadJob.state == "transcribing")
        .values(**values)
    )
    return rows_matched(result)


def upload_state(session: Session, encounter_id: str) -> dict[str, Any] | None:
    """The newest upload's transcription as a client sees it: state, reason, attempts; None without uploads."""
    job = session.scalars(
        select(UploadJob).where(UploadJob.encounter_id == encounter_id).order_by(UploadJob.id.desc()).limit(1)
    ).first()
    if job is None:
        return None
    return {
        "state": job.state,
        "reason": job.reason,
        "attempts": job.attempts,
        "updated_at": job.updated_at.isoformat(timespec="seconds"),
    }


def _failure(exc: BaseException) -> tuple[str, bool]:
    """(reason to show, whether to try again): bad audio never gets better, an engine may. No PHI: our own
    messages name "the upload", never a path or a word; anything else is named by its type only."""
    if isinstance(exc, AudioError):
        return str(exc), False
    if isinstance(exc, FileNotFoundError):
        return "the stored audio file is missing", False
    if isinstance(exc, EngineUnavailableError):
        return f"speech recognition is unavailable: {exc}", True
    return f"transcription failed ({type(exc).__name__})", True


def _record_failure(database: Database, job_id: int, holder: str, exc: BaseException) -> None:
    reason, retry = _failure(exc)
    moment = now()
    with database.session() as session, session.begin():
        job = session.get(UploadJob, job_id)
        if job is None or job.holder != holder:
            return
        job.holder, job.lease_until, job.updated_at = None, None, moment
        job.reason = reason[:255]
        if retry and job.attempts < MAX_ATTEMPTS:
            job.next_attempt_at = moment + timedelta(seconds=RETRY_AFTER_S[min(job.attempts, len(RETRY_AFTER_S)) - 1])
        else:
            job.state = "failed"
    log.warning("upload job %s attempt failed: %s", job_id, type(exc).__name__)


@contextmanager
def _renewing(database: Database, job_id: int, holder: str, ttl_s: float) -> Iterator[None]:
    """Keep the job's lease while the body runs (a thread renews it every third of `ttl_s`)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                with database.session() as session, session.begin():
                    if not renew_job(session, job_id, holder, ttl_s=ttl_s):
                        log.warning("upload job %s: lease lost", job_id)
                        return
            except Exception as exc:  # a database hiccup: the next renewal may work
                log.warning("upload job %s: lease renewal failed (%s)", job_id, type(exc).__name__)

    thread = threading.Thread(target=renew, name=f"upload-lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_job(
    database: Database, settings: Settings, job_id: int, holder: str, *, ttl_s: float = JOB_LEASE_S
) -> Transcript | None:
    """Transcribe a claimed job's upload and store the transcript with the job done, in one transaction.

    A failure is recorded (retry later or failed) and raised to the caller. Returns None, storing
    nothing, when the lease was lost meanwhile: the node that took it over stores its own.
    """
    from scribe.asr import choose_engine, load_engine
    from scribe.encounters import records_context, save_transcript

    with database.session() as session:
        job = session.get(UploadJob, job_id)
        upload = session.get(AudioUpload, job.upload_id) if job else None
        encounter = session.get(Encounter, job.encounter_id) if job else None
        if job is None or upload is None or encounter is None:
            return None
        mode = cast(Mode, encounter.mode)  # create_encounter stores only a Mode
        context, path = records_context(session, encounter.id), settings.audio_dir / upload.path
    try:
        with _renewing(database, job_id, holder, ttl_s):
            if not path.is_file():
                raise FileNotFoundError(path)
            engine = load_engine(choose_engine(settings.asr_engine, mode, settings), settings, serving=True)
            transcript = transcribe_file(engine, path, AudioLimits.from_settings(settings), context)
    except Exception as exc:
        _record_failure(database, job_id, holder, exc)
        raise
    with database.session() as session, session.begin():
        job = session.get(UploadJob, job_id, with_for_update=True)
        if job is None or job.holder != holder or job.state != "transcribing":
            log.warning("upload job %s: lease lost before the transcript was stored", job_id)
            return None
        encounter = session.get(Encounter, job.encounter_id)
        assert encounter is not None  # the job row, locked and present, references it (a foreign key)
        row = save_transcript(session, encounter, transcript, source="upload", upload_id=job.upload_id)
        session.flush()
        job.state, job.holder, job.lease_until, job.reason = "done", None, None, None
        job.transcript_id, job.updated_at = row.id, now()
    return transcript


def run_due_jobs(
    database: Database, settings: Settings, *, moment: datetime | None = None, stop: threading.Event | None = None
) -> int:
    """Claim and run due jobs one by one until none is left, or `stop` is set (the node drains); how many were
    run (failures included)."""
    ran = 0
    while stop is None or not stop.is_set():
        holder = job_holder(settings.node_id)
        with database.session() as session, session.begin():
            job_id = claim_job(session, holder, moment=moment)
        if job_id is None:
            return ran
        ran += 1
        try:
            run_job(database, settings, job_id, holder)
        except Exception:  # recorded on the job; the next one still runs
            pass
    return ran


async def upload_loop(
    database: Database,
    settings: Settings,
    executor: Executor,
    *,
    interval_s: float = 10.0,
    stop: threading.Event | None = None,
) -> None:
    """On every node, at start and then every `interval_s`: run the uploads whose transcription is due (new,
    retried, or left by a node that stopped). Runs on the upload executor, one transcription at a time."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(executor, functools.partial(run_due_jobs, database, settings, stop=stop))
        except Exception as exc:  # a database hiccup must not end the loop
            log.error("upload job pass failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
