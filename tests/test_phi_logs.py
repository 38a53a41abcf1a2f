"""No PHI in application logs: a full run of a real server at debug level, grepped for the patient and the words."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from scribe.audio import decode_audio
from scribe.streaming.client import pcm16, stream_pcm
from tests.accounts import enrol
from tests.accounts import token as mint
from tests.conftest import SAMPLES
from tests.helpers.server import free_port, launch_server, wait_until_serving

SECRETS = ("Maria", "Alvarez", "amlodipine", "apixaban", "metoprolol", "fibrillation", "Penicillin", "Hives", "pt-1001")


@pytest.mark.slow  # `scribe serve` subprocess that transcribes
def test_a_full_run_logs_no_patient_data(tmp_path: Path, models_dir: Path):
    data = tmp_path / "data"
    port = free_port()
    server = launch_server(data, port, models_dir, env={"SCRIBE_LOG_LEVEL": "debug"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, port)
        token, ehr = mint("dr-log"), mint("ehr-log", ("system/DocumentReference.rs",))
        enrol(data, token, ehr)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth, timeout=120) as client:
            encounter = client.post(
                "/v1/encounters", json={"patient": {"id": "pt-1001", "name": "Maria Alvarez"}, "mode": "dictation"}
            ).json()["id"]
            bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
            assert (
                client.post(
                    f"/v1/encounters/{encounter}/records",
                    content=bundle,
                    headers={"Content-Type": "application/fhir+json"},
                ).status_code
                == 201
            )
            upload = client.post(
                f"/v1/encounters/{encounter}/audio",
                content=(SAMPLES / "cardiology_followup.wav").read_bytes(),
                headers={"Content-Type": "audio/wav"},
            )
            assert upload.status_code == 200 and "amlodipine" in upload.text.lower()
            assert (
                client.post(
                    f"/v1/encounters/{encounter}/audio", content=os.urandom(4000), headers={"Content-Type": "audio/wav"}
                ).status_code
                == 422
            )
            assert (
                client.post(
                    f"/v1/encounters/{encounter}/records",
                    content=b'{"resourceType": "Maria Alvarez"}',
                    headers={"Content-Type": "application/json"},
                ).status_code
                == 422
            )
            draft = client.post(f"/v1/encounters/{encounter}/note")
            assert draft.status_code == 201
            note = draft.json()
            edited = note["note"]
            edited["plan"].append({"text": "Maria Alvarez to bring her amlodipine bottles.", "evidence": []})
            assert (
                client.put(
                    f"/v1/notes/{note['id']}", json=edited, headers={"If-Match": draft.headers["etag"]}
                ).status_code
                == 200
            )
            assert client.post(f"/v1/notes/{note['id']}/sign", json={"confirm_unsupported": True}).status_code == 200
            fhir = {"Authorization": f"Bearer {ehr}"}
            assert (
                client.get(
                    "/fhir/DocumentReference?patient=pt-1001&_revinclude=Provenance:target", headers=fhir
                ).json()["total"]
                == 1
            )
            assert client.get(f"/fhir/Binary/{note['id']}-text", headers=fhir).status_code == 200
            assert client.get("/fhir/DocumentReference?patient=pt-1001&date=badMaria", headers=fhir).status_code == 400
            assert client.get("/v1/encounters/Maria-Alvarez", headers=auth).status_code == 404
            assert client.get("/v1/encounters", headers={"Authorization": "Bearer Maria.Alvarez"}).status_code == 401
        pcm = pcm16(decode_audio(SAMPLES / "cardiology_followup.wav"))
        result = asyncio.run(stream_pcm(f"ws://127.0.0.1:{port}/v1/encounters/enc-log-1/stream", pcm, token=token))
        assert result.transcript and "fibrillation" in result.transcript["text"].lower()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "ASR engine ready" in output and "Application startup complete" in output  # the log is really there
    leaks = [word for word in SECRETS if word.lower() in output.lower()]
    assert not leaks, f"patient data in the log: {leaks}\n{output[-3000:]}"


def test_websocket_frames_are_not_logged_even_at_debug():
    import logging

    import websockets.frames

    from scribe.logs import configure_logging

    configure_logging("debug")
    logger = logging.getLogger("uvicorn.error")
    frame_record = logger.makeRecord(
        "uvicorn.error", logging.DEBUG, websockets.frames.__file__, 1, "> TEXT %r", ("atrial fibrillation",), None
    )
    own_record = logger.makeRecord("uvicorn.error", logging.DEBUG, __file__, 1, "server event", (), None)
    assert [f.filter(frame_record) for f in logger.filters] == [False]
    assert all(f.filter(own_record) for f in logger.filters)
    configure_logging("debug")
    assert len(logger.filters) == 1  # configuring twice adds no second filter


def test_the_first_start_message_is_not_buried_in_library_chatter():
    """What `scribe serve` prints on a first start (the account to sign in with) must stand out: alembic's
    per-plugin set-up lines are quiet at info; its migrations still show."""
    import logging

    from scribe.logs import configure_logging

    configure_logging("info")
    assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
    assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)


@pytest.mark.slow  # `scribe serve` subprocess
def test_no_credential_reaches_the_log_of_a_real_server(tmp_path: Path):
    """`scribe serve` at debug, fed credentials everywhere a request can carry one (a websocket `?ticket=`, bearer
    headers, `?access_token=`, `?code=`, a cookie, a password and a client assertion in forms): none appears in
    anything it prints; `[redacted]` does, and each request's access line names its route template only."""
    from websockets.sync.client import connect

    secrets = {
        name: f"SECRET-{name}-{os.urandom(6).hex()}"
        for name in ("ticket", "bearer", "access_token", "code", "cookie", "password", "assertion", "csrf")
    }
    port = free_port()
    server = launch_server(tmp_path / "data", port, asr=False, env={"SCRIBE_LOG_LEVEL": "debug"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, port, ready=False)
        with connect(f"ws://127.0.0.1:{port}/v1/encounters/enc-log-2/stream?ticket={secrets['ticket']}") as ws:
            assert '"unauthorized"' in ws.recv(timeout=10)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert (
                client.get("/v1/encounters", headers={"Authorization": f"Bearer {secrets['bearer']}"}).status_code
                == 401
            )
            assert (
                client.get(
                    f"/fhir/DocumentReference?access_token={secrets['access_token']}&patient=pt-1001"
                ).status_code
                == 401
            )
            assert (
                client.get(
                    f"/v1/encounters?code={secrets['code']}",
                    headers={"Cookie": f"scribe_session={secrets['cookie']}", "X-CSRF-Token": secrets["csrf"]},
                ).status_code
                == 401
            )
            assert (
                client.post("/v1/session", data={"username": "clinician", "password": secrets["password"]}).status_code
                == 401
            )
            assert (
                client.post(
                    "/auth/token", data={"grant_type": "client_credentials", "client_assertion": secrets["assertion"]}
                ).status_code
                == 400
            )
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    leaks = [name for name, value in secrets.items() if value in output]
    assert not leaks, f"credentials in the log: {leaks}\n{output[-3000:]}"
    assert "pt-1001" not in output
    assert '"WebSocket /v1/encounters/enc-log-2/stream?ticket=[redacted]"' in output
    assert 'scribe.access: 127.0.0.1 "GET /fhir/DocumentReference" 401' in output
    assert 'scribe.access: 127.0.0.1 "POST /v1/session" 401' in output


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ('%s - "WebSocket %s" [accepted]', ("127.0.0.1:50000", "/v1/encounters/e/stream?ticket=S3CR3T")),
        ("request headers %r", ([(b"host", b"x"), (b"authorization", b"Bearer S3CR3T"), (b"cookie", b"a=S3CR3T")],)),
        ("headers %s", ({"Authorization": "Bearer S3CR3T", "X-CSRF-Token": "S3CR3T"},)),
        ("fetching %s", ("https://idp.example.org/token?code=S3CR3T&state=1",)),
        ("form %s", ("grant_type=client_credentials&client_assertion=S3CR3T&password=S3CR3T",)),
        ("Authorization: Bearer %s", ("S3CR3T",)),
        ("%s %s", ("only one argument: the message cannot be built, its parts are still redacted ?token=S3CR3T",)),
    ],
)
def test_every_record_is_redacted_at_the_root_handler(message, args, capsys):
    """Whatever logger a record comes from, its credentials are [redacted] in what the root handler writes."""
    import logging

    from scribe.logs import configure_logging

    before = logging.root.handlers[:]
    configure_logging("info")
    try:
        logging.getLogger("anything.at.all").warning(message, *args)
        try:
            raise ValueError("GET /x?access_token=S3CR3T failed")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("failed with Authorization: Bearer S3CR3T")
    finally:  # the handler writes to this test's captured stderr: later tests must not log into it
        logging.root.handlers[:] = before
    written = capsys.readouterr().err
    assert "S3CR3T" not in written and "[redacted]" in written
