"""`scribe stream --records`: the bundle is attached to the URL's encounter over REST before any audio is sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.auth.tokens import create_token
from scribe.cli import run
from scribe.config import Settings
from scribe.store.models import AttachmentRow, Encounter
from tests.accounts import KEY, enrol, token
from tests.conftest import SAMPLES
from tests.test_stream_client import ScriptedServer

SAMPLE = SAMPLES / "urology_asthma.wav"
BUNDLE = SAMPLES / "urology_asthma.bundle.json"
TOKEN = token("dr-a")


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, object]]:
    """A real REST server on a free port, in this process (no ASR: the websocket side is scripted)."""
    app = create_app(Settings(data_dir=tmp_path, secret_key=KEY), load_asr=False)
    enrol(tmp_path, TOKEN)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    serving = uvicorn.Server(uvicorn.Config(app, log_config=None))
    thread = threading.Thread(target=serving.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not serving.started:
        assert thread.is_alive()
        threading.Event().wait(0.05)
    yield f"127.0.0.1:{listener.getsockname()[1]}", app
    serving.should_exit = True
    thread.join(timeout=10)
    listener.close()


def records_of(app, encounter_id: str) -> list[str]:
    with app.state.database.session() as session:
        return list(
            session.scalars(
                select(AttachmentRow.label).where(
                    AttachmentRow.encounter_id == encounter_id, AttachmentRow.kind == "records"
                )
            )
        )


def scripted_stream(monkeypatch, app, encounter_id: str) -> list[list[str]]:
    """Stand in for the websocket; note which records the encounter had when the stream connected."""
    seen: list[list[str]] = []
    script = ScriptedServer(
        [{"type": "done", "transcript": {"text": "Dyspnoea.", "engine": "whisper", "segments": []}}]
    )

    def connect(url, **kwargs):
        assert url.endswith(f"/v1/encounters/{encounter_id}/stream")
        seen.append(records_of(app, encounter_id))
        return script

    monkeypatch.setattr("websockets.connect", connect)
    return seen


def stream_with_records(address: str, token: str, bundle: str) -> int:
    """`scribe stream` of the sample into encounter enc-r of the server at `address`, attaching `bundle` first."""
    url = f"ws://{address}/v1/encounters/enc-r/stream"
    return run(["stream", str(SAMPLE), "--url", url, "--token", token, "--records", bundle])


@pytest.mark.parametrize("exists", [False, True])
def test_records_are_attached_before_streaming(server, monkeypatch, capsys, exists):
    """A new encounter is created for the bundle's patient; an existing one (a 409 on create) gets the records too."""
    import httpx

    address, app = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if exists:
        assert httpx.post(f"http://{address}/v1/encounters", json={"id": "enc-r"}, headers=headers).status_code == 201
    seen = scripted_stream(monkeypatch, app, "enc-r")
    code = stream_with_records(address, TOKEN, str(BUNDLE))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == "Dyspnoea." and seen == [["records-1"]]
    encounter = httpx.get(f"http://{address}/v1/encounters/enc-r", headers=headers).json()
    assert encounter["patient"]["id"] == "pt-1005" and encounter["clinician"] == "dr-a"


def test_a_refused_attachment_stops_before_streaming(server, monkeypatch, capsys):
    address, app = server
    seen = scripted_stream(monkeypatch, app, "enc-r")
    code = stream_with_records(address, create_token(b"x" * 40, "dr-a"), str(BUNDLE))
    _, err = capsys.readouterr()
    assert code == 5 and "POST /v1/encounters answered 401" in err and seen == []


@pytest.mark.parametrize("url", ["ws://127.0.0.1:9/v1/encounters", "http://127.0.0.1:9/v1/encounters/e/stream"])
def test_records_need_a_stream_url_naming_the_encounter(monkeypatch, capsys, url):
    code = run(["stream", str(SAMPLE), "--url", url, "--records", str(BUNDLE)])
    _, err = capsys.readouterr()
    assert code == 2 and "--records needs --url of the form ws://HOST:PORT/v1/encounters/ID/stream" in err


def test_a_bad_bundle_is_refused_before_anything_is_sent(server, monkeypatch, capsys, tmp_path):
    address, app = server
    seen = scripted_stream(monkeypatch, app, "enc-r")
    bundle = tmp_path / "bad.json"
    bundle.write_text("{")
    code = stream_with_records(address, TOKEN, str(bundle))
    _, err = capsys.readouterr()
    assert code == 3 and str(bundle) in err and seen == []
    assert records_of(app, "enc-r") == []


@pytest.mark.parametrize("exists", [None, "dictation", "encounter"])
def test_mode_creates_the_encounter_in_that_mode_first(server, monkeypatch, capsys, exists):
    """`--mode dictation` makes a new encounter a dictation (which the server may stream with MedASR); an existing
    dictation is resumed as it is; an existing conversation is refused before any audio is sent."""
    import httpx

    address, app = server
    if exists:
        assert (
            httpx.post(
                f"http://{address}/v1/encounters",
                json={"id": "enc-m", "mode": exists},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ).status_code
            == 201
        )
    seen = scripted_stream(monkeypatch, app, "enc-m")
    code = run(
        [
            "stream",
            str(SAMPLE),
            "--url",
            f"ws://{address}/v1/encounters/enc-m/stream",
            "--token",
            TOKEN,
            "--mode",
            "dictation",
        ]
    )
    _, err = capsys.readouterr()
    with app.state.database.session() as session:
        mode = session.get(Encounter, "enc-m").mode
    if exists == "encounter":
        assert code == 5 and "exists in encounter mode, not dictation" in err and seen == [] and mode == "encounter"
    else:
        assert code == 0, err
        assert seen == [[]] and mode == "dictation"


def test_mode_needs_a_stream_url_naming_the_encounter(capsys):
    code = run(["stream", str(SAMPLE), "--url", "ws://127.0.0.1:9/v1/encounters", "--mode", "dictation"])
    _, err = capsys.readouterr()
    assert code == 2 and "--mode needs --url of the form ws://HOST:PORT/v1/encounters/ID/stream" in err
