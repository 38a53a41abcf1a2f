"""Every stored upload is transcribed, once, by whichever node holds its job's lease: claimed exclusively on
SQLite and PostgreSQL, taken over after a crash, retried a few times and then failed, never in a loop."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.api.encounters import upload_executor
from scribe.auth.tokens import Principal
from scribe.encounter_audio import upload_spool_dir
from scribe.encounters import create_encounter, now, save_transcript, store_upload
from scribe.store import open_database
from scribe.store.models import UploadJob
from scribe.uploads import (
    MAX_ATTEMPTS,
    claim_job,
    create_job,
    job_holder,
    release_node_jobs,
    renew_job,
    run_due_jobs,
    upload_state,
)
from tests.accounts import enrol
from tests.conftest import SAMPLES
from tests.helpers.audio import write_wav
from tests.helpers.clinic import DR_A, new_encounter, post_audio

SAMPLE = SAMPLES / "cardiology_followup.wav"
CLINICIAN = Principal("dr-a", ("user/*.*",), 0)


def _stored_upload(database, settings, encounter_id: str = "enc-1") -> int:
    """An encounter with an upload stored and its job written, as the upload route leaves them; the job id."""
    spool = upload_spool_dir(settings.audio_dir)
    spool.mkdir(parents=True, exist_ok=True)
    spooled = spool / "test.part"
    spooled.write_bytes(SAMPLE.read_bytes())
    with database.session() as session, session.begin():
        encounter = create_encounter(session, CLINICIAN, patient_id="pt-1", mode="dictation", encounter_id=encounter_id)
        upload = store_upload(
            session,
            settings,
            encounter,
            spooled,
            size=spooled.stat().st_size,
            sha256="0" * 64,
            media_type="audio/wav",
            duration_s=56.0,
        )
        return create_job(session, upload).id


def _claim(database, holder: str, **kwargs) -> int | None:
    with database.session() as session, session.begin():
        return claim_job(session, holder, **kwargs)


def test_a_job_is_claimed_by_one_node_and_a_dead_nodes_lease_runs_out(database_target):
    settings, schema, _ = database_target
    database = open_database(settings, schema=schema)
    job_id = _stored_upload(database, settings)
    a, b = job_holder("node-a"), job_holder("node-b")
    assert a.startswith("node-a/") and a != job_holder("node-a")
    assert _claim(database, a) == job_id
    assert _claim(database, b) is None  # node a holds it
    with database.session() as session, session.begin():
        assert renew_job(session, job_id, a) and not renew_job(session, job_id, b)
    later = now() + timedelta(seconds=61)
    assert _claim(database, b, moment=later) == job_id  # node a died: its lease ran out
    with database.session() as session, session.begin():
        assert not renew_job(session, job_id, a)  # node a, were it only slow, has lost it
        assert release_node_jobs(session, "node-b") == 1  # node b restarts: its jobs are free at once
    assert _claim(database, a) == job_id
    with database.session() as session:
        job = session.get(UploadJob, job_id)
        assert (job.attempts, job.state, job.holder) == (MAX_ATTEMPTS, "transcribing", a)
        assert upload_state(session, "enc-1")["state"] == "transcribing"
    assert _claim(database, b, moment=now() + timedelta(seconds=61)) is None  # attempts used up: not run again
    with database.session() as session:
        state = upload_state(session, "enc-1")
    assert state["state"] == "failed" and "interrupted 3 times" in state["reason"] and state["attempts"] == 3


def test_nodes_claiming_at_once_get_the_job_once(database_target):
    settings, schema, _ = database_target
    database = open_database(settings, schema=schema)
    job_id = _stored_upload(database, settings)
    won: list[int | None] = []
    start = threading.Barrier(6)

    def node(name: str) -> None:
        start.wait()
        won.append(_claim(database, job_holder(name)))

    threads = [threading.Thread(target=node, args=(f"node-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won, key=lambda x: x or 0) == [None] * 5 + [job_id]


@pytest.fixture
def models(database_target) -> Path:
    from scribe.asr.bundled_whisper import ensure_bundled

    settings, _, models = database_target
    ensure_bundled(models)
    (settings.data_dir / "models").mkdir(parents=True, exist_ok=True)
    if not (settings.data_dir / "models" / "whisper-base").exists():
        (settings.data_dir / "models" / "whisper-base").symlink_to(models / "whisper-base")
    return models


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_a_failing_engine_fails_the_job_after_three_attempts_and_never_loops(database_target, models, monkeypatch):
    from scribe.errors import EngineUnavailableError

    settings, schema, _ = database_target
    calls = []

    def broken(*_args, **_kwargs):
        calls.append(1)
        raise EngineUnavailableError("the ASR engine is not available here")

    monkeypatch.setattr("scribe.asr.load_engine", broken)
    with TestClient(create_app(settings, load_asr=False, database_schema=schema)) as api:
        enrol(api.app.state.database, DR_A)
        encounter = new_encounter(api)
        response = post_audio(api, encounter, SAMPLE.read_bytes())
        assert response.status_code == 503 and "not available" in response.text
        upload = api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["upload"]
        assert upload["state"] == "transcribing" and upload["attempts"] == 1  # a retry is due in 30 s
        assert upload["reason"] == "speech recognition is unavailable: the ASR engine is not available here"
        database = api.app.state.database
        assert run_due_jobs(database, settings) == 0  # not due yet
        assert run_due_jobs(database, settings, moment=now() + timedelta(seconds=31)) == 1
        assert run_due_jobs(database, settings, moment=now() + timedelta(seconds=200)) == 1
        assert run_due_jobs(database, settings, moment=now() + timedelta(days=1)) == 0
        upload = api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["upload"]
    assert len(calls) == 3 and upload["state"] == "failed" and upload["attempts"] == 3
    assert "/" not in upload["reason"]  # no path, no patient data: what failed, in our words


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_a_job_left_by_a_stopped_node_is_finished_when_a_node_starts(database_target, models):
    """A node died after storing the upload (the job is still held in its name): the same node restarted frees it
    at once, another node takes it when the lease has run out; either way the transcript appears."""
    settings, schema, _ = database_target
    database = open_database(settings, schema=schema)
    enrol(database, DR_A)
    job_id = _stored_upload(database, settings, "enc-a")
    assert _claim(database, "node-a/dead") == job_id  # node a took it, then was killed
    with TestClient(
        create_app(settings.model_copy(update={"node_id": "node-a"}), load_asr=False, database_schema=schema)
    ) as api:
        deadline = time.monotonic() + 120
        while (state := api.get("/v1/encounters/enc-a", headers=DR_A).json()["upload"])["state"] == "transcribing":
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["state"] == "done" and state["attempts"] == 2, state
        transcript = api.get("/v1/encounters/enc-a/transcript", headers=DR_A).json()
        assert "148 over 92" in transcript["text"]

    job_id = _stored_upload(database, settings, "enc-b")
    assert _claim(database, "node-c/dead", ttl_s=0.0) == job_id  # node c took it and died: its lease is over
    with TestClient(
        create_app(
            settings.model_copy(update={"node_id": "node-b", "upload_poll_s": 0.2}),
            load_asr=False,
            database_schema=schema,
        )
    ) as api:
        deadline = time.monotonic() + 120
        while api.get("/v1/encounters/enc-b", headers=DR_A).json()["upload"]["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_a_long_transcription_answers_202_and_the_state_tells_how_it_ends(database_target, models):
    settings, schema, _ = database_target
    with TestClient(
        create_app(settings.model_copy(update={"upload_wait_s": 0.0}), load_asr=False, database_schema=schema)
    ) as api:
        enrol(api.app.state.database, DR_A)
        encounter = new_encounter(api)
        response = post_audio(api, encounter, SAMPLE.read_bytes())
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/v1/encounters/{encounter}"
        assert response.json()["upload"]["state"] == "transcribing"
        deadline = time.monotonic() + 120
        while (state := api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["upload"])["state"] != "done":
            assert state["state"] == "transcribing" and time.monotonic() < deadline
            time.sleep(0.2)
        assert "148 over 92" in api.get(f"/v1/encounters/{encounter}/transcript", headers=DR_A).json()["text"]
        assert state["reason"] is None and state["attempts"] == 1


def test_a_draining_node_leaves_uploads_to_the_job_queue(database_target, monkeypatch):
    """While a node drains, an upload is stored with its job and answered 202 at once, for another node to
    transcribe; one still being transcribed when the grace runs out goes back to the queue, its attempt refunded,
    and what that node computes later is discarded."""
    settings, schema, _ = database_target
    engine_called, release = threading.Event(), threading.Event()

    def slow(*_args, **_kwargs):  # an engine busy past the grace
        engine_called.set()
        release.wait(30)
        raise RuntimeError("the node went away")

    monkeypatch.setattr("scribe.asr.load_engine", slow)
    database = open_database(settings, schema=schema)
    try:
        with TestClient(
            create_app(settings.model_copy(update={"shutdown_grace_s": 1.0}), load_asr=False, database_schema=schema)
        ) as api:
            enrol(api.app.state.database, DR_A)
            busy, later = new_encounter(api), new_encounter(api)
            drain = api.app.state.drain
            threading.Thread(target=lambda: engine_called.wait(30) and api.portal.call(drain.begin)).start()
            started = time.monotonic()
            response = api.post(
                f"/v1/encounters/{busy}/audio",
                content=SAMPLE.read_bytes(),
                headers={**DR_A, "Content-Type": "audio/wav"},
            )
            assert response.status_code == 202 and time.monotonic() - started < 20, response.text
            response = api.post(
                f"/v1/encounters/{later}/audio",
                content=SAMPLE.read_bytes(),
                headers={**DR_A, "Content-Type": "audio/wav"},
            )
            assert response.status_code == 202 and response.json()["upload"]["attempts"] == 0, response.text
        with database.session() as session:
            jobs = {job.encounter_id: job for job in session.scalars(select(UploadJob))}
        for encounter in (busy, later):
            job = jobs[encounter]
            assert (job.state, job.holder, job.attempts, job.reason) == ("transcribing", None, 0, None)
        assert _claim(database, "node-b/next") == jobs[busy].id  # another node takes it at once
    finally:
        release.set()
    upload_executor.submit(lambda: None).result(timeout=30)  # the abandoned attempt has ended...
    with database.session() as session:  # ...recording nothing on a job it no longer holds
        job = session.get(UploadJob, jobs[busy].id)
        assert (job.holder, job.attempts, job.reason) == ("node-b/next", 1, None)


# ------------------------------------------------------------------------------------------ a real server


@pytest.mark.slow
def test_sigkill_while_an_upload_is_transcribed_then_the_restarted_server_finishes_it(tmp_path: Path, models_dir: Path):
    """`scribe serve` is killed while the upload request is in flight, after its audio is stored; restarted, it
    transcribes that upload on its own: the transcript is there within 60 s of the restart."""
    import wave

    from scribe.auth.tokens import create_token
    from tests.accounts import KEY
    from tests.helpers.server import free_port, start_server

    long = tmp_path / "eight-times.wav"  # 2 minutes: transcribing it takes long enough to be caught in the act
    with wave.open(str(SAMPLE)) as sample:
        assert (sample.getframerate(), sample.getnchannels(), sample.getsampwidth()) == (16000, 1, 2)
        frames = sample.readframes(sample.getnframes())
    write_wav(long, frames * 8)
    data_dir = tmp_path / "data"
    models = models_dir
    port = free_port()
    token = create_token(KEY.encode(), "dr-a", ("user/*.*",), 600)
    headers = {"Authorization": f"Bearer {token}"}
    server = start_server(data_dir, port, models)
    enrol(data_dir, token)
    base = f"http://127.0.0.1:{port}"
    try:
        encounter = httpx.post(
            f"{base}/v1/encounters", json={"patient": {"id": "pt-1"}, "mode": "dictation"}, headers=headers
        ).json()["id"]
        answer: list = []
        request = threading.Thread(
            target=lambda: answer.append(
                _post_quietly(
                    f"{base}/v1/encounters/{encounter}/audio",
                    long.read_bytes(),
                    {**headers, "Content-Type": "audio/wav"},
                )
            )
        )
        request.start()
        uploads = data_dir / "audio" / encounter / "uploads"
        deadline = time.monotonic() + 60
        while True:  # the audio is stored and its transcription is running
            state = httpx.get(f"{base}/v1/encounters/{encounter}", headers=headers).json()["upload"]
            if state and state["state"] == "transcribing" and uploads.is_dir() and any(uploads.iterdir()):
                break
            assert time.monotonic() < deadline and not answer, (state, answer)
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        request.join(timeout=30)
        assert not answer or answer[0] is None  # the request never got its transcript
    finally:
        if server.poll() is None:
            server.kill()
    restarted = time.monotonic()
    server = start_server(data_dir, port, models)
    try:
        while True:
            state = httpx.get(f"{base}/v1/encounters/{encounter}", headers=headers).json()["upload"]
            if state["state"] != "transcribing":
                break
            assert time.monotonic() - restarted < 60, state
            time.sleep(0.2)
        seconds = time.monotonic() - restarted
        transcript = httpx.get(f"{base}/v1/encounters/{encounter}/transcript", headers=headers).json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(
        f"\ntranscript of the interrupted upload present {seconds:.1f} s after the restart "
        f"(attempt {state['attempts']}, {transcript['duration_s']:.0f} s of audio)"
    )
    assert state["state"] == "done" and state["attempts"] == 2 and seconds <= 60
    assert transcript["duration_s"] == pytest.approx(8 * len(frames) / 32000, abs=0.05)
    assert transcript["text"].lower().count("pressure") >= 6


def _post_quietly(url: str, content: bytes, headers: dict[str, str]):
    """POST; None when the server died before answering."""
    try:
        return httpx.post(url, content=content, headers=headers, timeout=300).status_code
    except httpx.HTTPError:
        return None


def test_an_upload_left_untranscribed_before_jobs_existed_gets_a_job_when_the_database_is_upgraded(tmp_path: Path):
    """Migration 0004: uploads stored before upload jobs existed (0003) whose transcription was cut off get
    their job; one already transcribed does not."""
    from alembic import command
    from alembic.config import Config

    from scribe.config import Settings
    from scribe.store.db import MIGRATIONS
    from scribe.transcript import Segment, Transcript

    settings = Settings(data_dir=tmp_path)
    database = open_database(settings)
    spool = upload_spool_dir(settings.audio_dir)
    spool.mkdir(parents=True, exist_ok=True)
    uploads = []
    with database.session() as session, session.begin():
        for name in ("cut-off", "transcribed"):
            encounter = create_encounter(session, CLINICIAN, patient_id="pt-1", mode="dictation", encounter_id=name)
            spooled = spool / f"{name}.part"
            spooled.write_bytes(SAMPLE.read_bytes())
            upload = store_upload(
                session, settings, encounter, spooled, size=1, sha256="0" * 64, media_type="audio/wav", duration_s=1.0
            )
            uploads.append(upload.id)
        said = Transcript(
            "Blood pressure.", "en", "whisper", "base", 1.0, 0.1, [Segment(0, 0.0, 1.0, "Blood pressure.")]
        )
        save_transcript(session, encounter, said, source="upload", upload_id=upload.id)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:  # back to how a database from before the jobs looked
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    database.engine.dispose()

    database = open_database(settings)  # what every start does: migrate to the newest revision
    with database.session() as session:
        jobs = session.scalars(select(UploadJob)).all()
    assert [(job.upload_id, job.encounter_id, job.state, job.attempts) for job in jobs] == [
        (uploads[0], "cut-off", "transcribing", 0)
    ]
    assert jobs[0].next_attempt_at <= now()
