"""The websocket protocol end to end through the FastAPI app: happy path, every error path, resume, auth."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from scribe.api.app import create_app
from scribe.audio import decode_audio
from scribe.auth.tokens import create_token
from scribe.config import Settings
from scribe.streaming.client import pcm16
from scribe.wer import word_errors
from tests.accounts import KEY, enrol, token
from tests.conftest import SAMPLES
from tests.helpers.stream import FRAME, SAMPLE, connect, expect_error, sample_pcm, start, stream_all


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=KEY, allowed_origins=["https://scribe.example.org"])


@pytest.fixture
def client(app_settings, whisper):
    app = create_app(app_settings, load_asr=False)
    with TestClient(app) as test_client:
        app.state.asr.serve({"encounter": whisper, "dictation": whisper})
        enrol(app.state.database, token("dr-a"), token("dr-b"))
        yield test_client


def test_full_session(client, app_settings):
    pcm = sample_pcm()
    with connect(client) as ws:
        assert start(ws) == {"type": "ready", "received_ms": 0, "received_bytes": 0}
        messages = stream_all(ws, pcm)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1000
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "done" and kinds[-2] == "ack" and "final" in kinds
    acks = [m["received_bytes"] for m in messages if m["type"] == "ack"]
    assert acks == sorted(acks) and acks[-1] == len(pcm)
    finals = [m["segment"] for m in messages if m["type"] == "final"]
    assert [f["id"] for f in finals] == list(range(len(finals)))
    transcript = messages[-1]["transcript"]
    assert transcript["segments"] == finals and transcript["engine"] == "whisper"
    assert transcript["duration_s"] == pytest.approx(len(pcm) / 32000, abs=0.01)
    assert word_errors(SAMPLE.with_suffix(".txt").read_text(), transcript["text"]).wer < 0.6
    assert (app_settings.audio_dir / "enc-1" / "audio.pcm").read_bytes() == pcm


def test_resume_after_dropped_connection_is_byte_exact(client, app_settings):
    pcm = sample_pcm()
    half = (len(pcm) // 2) // FRAME * FRAME
    with connect(client, "enc-r") as ws:
        start(ws)
        acked = 0
        for i in range(0, half, FRAME):
            ws.send_bytes(pcm[i : i + FRAME])
            message = ws.receive_json()
            assert message["type"] in ("ack", "partial", "final")
            acked = message.get("received_bytes", acked) if message["type"] == "ack" else acked
        while acked < half:  # only acknowledged audio is promised to survive the drop
            message = ws.receive_json()
            acked = message.get("received_bytes", acked) if message["type"] == "ack" else acked
        # the connection drops here: no stop
    with connect(client, "enc-r") as ws:
        ready = start(ws)
        assert ready["received_bytes"] >= half
        messages = stream_all(ws, pcm[ready["received_bytes"] :])
    transcript = messages[-1]["transcript"]
    assert (app_settings.audio_dir / "enc-r" / "audio.pcm").read_bytes() == pcm
    assert [s["id"] for s in transcript["segments"]] == list(range(len(transcript["segments"])))
    assert word_errors(SAMPLE.with_suffix(".txt").read_text(), transcript["text"]).wer < 0.6


def test_resume_with_another_format_is_refused(client):
    with connect(client, "enc-f") as ws:
        start(ws)
        ws.send_bytes(b"\x00" * FRAME)
        ws.receive_json()
    with connect(client, "enc-f") as ws:
        ws.send_text(json.dumps({"type": "start", "sample_rate": 48000}))
        expect_error(ws, "format_mismatch", 4409)


def test_another_clinicians_encounter_is_forbidden(client):
    with connect(client, "enc-o") as ws:
        start(ws)
        ws.send_bytes(b"\x00" * FRAME)
        ws.receive_json()
    with connect(client, "enc-o", subject="dr-b") as ws:
        expect_error(ws, "forbidden", 4403)


def test_second_socket_on_one_encounter(client):
    with connect(client, "enc-2") as first:
        start(first)
        with connect(client, "enc-2") as second:
            expect_error(second, "already_streaming", 4409)
        first.send_bytes(b"\x00" * FRAME)
        assert first.receive_json()["type"] == "ack"


@pytest.mark.parametrize(
    ("messages", "code", "close_code"),
    [
        (["{nope"], "bad_json", 4400),
        (["[1]"], "bad_message", 4400),
        (['{"type": "pause"}'], "unknown_type", 4400),
        (['{"type": "start"}'], "bad_field", 4400),
        ([b"\x00" * FRAME], "frame_before_start", 4422),
        (['{"type": "stop"}'], "stop_before_start", 4422),
        (['{"type": "start", "sample_rate": 96000}'], "unsupported_sample_rate", 4415),
        (['{"type": "start", "sample_rate": 16000, "encoding": "mp3"}'], "unsupported_encoding", 4415),
        (['{"type": "start", "sample_rate": 16000, "channels": 6}'], "unsupported_channels", 4415),
        (['{"type": "start", "sample_rate": 16000, "pad": "' + "x" * 5000 + '"}'], "message_too_large", 4413),
        (["START", '{"type": "start", "sample_rate": 16000}'], "already_started", 4422),
        (["START", b"\x00" * 3201], "odd_length", 4422),
        (["START", b"\x00" * 16002], "frame_too_large", 4413),
        (["START", b"\x00" * 100, b"\x00" * FRAME], "frame_too_short", 4422),
        (["START", b""], "frame_too_short", 4422),
    ],
)
def test_protocol_errors(client, messages, code, close_code):
    with connect(client, "enc-e") as ws:
        for message in messages:
            if message == "START":
                assert start(ws)["type"] == "ready"
            elif isinstance(message, bytes):
                ws.send_bytes(message)
            else:
                ws.send_text(message)
        while True:
            reply = ws.receive_json()
            if reply["type"] == "error":
                break
        assert reply["code"] == code, reply
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == close_code


def test_errors_do_not_disturb_other_sessions(client):
    with connect(client, "enc-ok") as good:
        start(good)
        with connect(client, "enc-bad") as bad:
            bad.send_text("{nope")
            expect_error(bad, "bad_json", 4400)
        good.send_bytes(b"\x00" * FRAME)
        assert good.receive_json() == {"type": "ack", "received_ms": 100, "received_bytes": FRAME}


def test_short_last_frame_before_stop_is_accepted(client, app_settings):
    with connect(client, "enc-s") as ws:
        start(ws)
        ws.send_bytes(b"\x01\x00" * 1600)
        ws.send_bytes(b"\x01\x00" * 10)
        ws.send_text('{"type": "stop"}')
        while (message := ws.receive_json())["type"] != "done":
            pass
    assert message["transcript"]["duration_s"] == pytest.approx(0.10125, abs=0.001)
    assert len((app_settings.audio_dir / "enc-s" / "audio.pcm").read_bytes()) == 3220


def test_session_too_long(app_settings, whisper):
    app = create_app(app_settings.model_copy(update={"max_audio_seconds": 0.25}), load_asr=False)
    with TestClient(app) as client:
        app.state.asr.serve({"encounter": whisper, "dictation": whisper})
        enrol(app.state.database, token())
        with connect(client, "enc-l") as ws:
            start(ws)
            for _ in range(2):
                ws.send_bytes(b"\x00" * FRAME)
                assert ws.receive_json()["type"] == "ack"
            ws.send_bytes(b"\x00" * FRAME)
            expect_error(ws, "session_too_long", 4413)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer junk"},
        {"Authorization": "Bearer " + create_token(b"z" * 40, "dr-a")},
        {"Origin": "https://evil.example.com"},
    ],
)
def test_unauthorized_stores_nothing(client, app_settings, headers):
    if "Origin" in headers:
        headers["Authorization"] = f"Bearer {token()}"
    with connect(client, "enc-u", headers=headers) as ws:
        expect_error(ws, "unauthorized", 4401)
    assert not (app_settings.audio_dir / "enc-u").exists()


def test_allowed_origin_and_missing_scope(client):
    with connect(
        client, "enc-a", headers={"Authorization": f"Bearer {token()}", "Origin": "https://scribe.example.org"}
    ) as ws:
        assert start(ws)["type"] == "ready"
    integration = create_token(KEY.encode(), "ehr", ("system/DocumentReference.rs",), 600)
    enrol(client.app.state.database, integration)  # a registered client: refused for the scope, not the identity
    with connect(client, "enc-a2", headers={"Authorization": f"Bearer {integration}"}) as ws:
        expect_error(ws, "unauthorized", 4401)


def test_ticket_works_once(client):
    response = client.post(
        "/v1/stream-tickets", json={"encounter_id": "enc-t"}, headers={"Authorization": f"Bearer {token()}"}
    )
    ticket = response.json()["ticket"]
    with connect(client, "enc-t", headers={}, query=f"?ticket={ticket}") as ws:
        assert start(ws)["type"] == "ready"
    with connect(client, "enc-t", headers={}, query=f"?ticket={ticket}") as ws:
        expect_error(ws, "unauthorized", 4401)


def test_bad_encounter_id(client):
    with connect(client, "bad%20id") as ws:
        expect_error(ws, "bad_encounter_id", 4400)


def test_two_concurrent_sessions_never_mix(client, app_settings):
    samples = [SAMPLES / "cardiology_followup.wav", SAMPLES / "thyroid_depression.wav"]
    results: dict[str, list[dict]] = {}

    def run(index: int) -> None:
        pcm = pcm16(decode_audio(samples[index]))
        with connect(client, f"enc-c{index}") as ws:
            start(ws)
            results[f"enc-c{index}"] = stream_all(ws, pcm)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index, sample in enumerate(samples):
        transcript = results[f"enc-c{index}"][-1]["transcript"]
        other = samples[1 - index].with_suffix(".txt").read_text()
        own = sample.with_suffix(".txt").read_text()
        assert word_errors(own, transcript["text"]).wer < word_errors(other, transcript["text"]).wer
        assert (app_settings.audio_dir / f"enc-c{index}" / "audio.pcm").read_bytes() == pcm16(decode_audio(sample))


@pytest.mark.parametrize("name", ["urology_asthma", "back_pain_phone"])
def test_audio_faster_than_recognition_gives_no_repetition(client, name):
    """Audio sent faster than real time leaves few, long passes, as on a loaded server; Whisper loops there.

    The transcript may come later but must not repeat itself (it once came back with a phrase
    repeated until the token budget ran out: WER 2.9).
    """
    from scribe.asr.hallucinations import loop_start

    sample = SAMPLES / f"{name}.wav"
    with connect(client, f"enc-{name}") as ws:
        start(ws)
        messages = stream_all(ws, pcm16(decode_audio(sample)))
    transcript = messages[-1]["transcript"]
    words = transcript["text"].split()
    assert words and loop_start(words) is None
    assert word_errors(sample.with_suffix(".txt").read_text(), transcript["text"]).wer < 0.8


def test_clipping_and_silence_are_warned_and_the_session_goes_on(client):
    """A clipped burst then 11 s of a muted microphone: one `clipping`, one `silence`, and still `done`."""
    t = np.arange(16000 * 2) / 16000
    loud = np.clip(3.0 * np.sin(2 * np.pi * 300 * t), -1, 1)
    pcm = pcm16(np.concatenate([loud, np.zeros(16000 * 11)]).astype(np.float32))
    with connect(client, encounter="enc-levels") as ws:
        start(ws)
        messages = stream_all(ws, pcm)
    found = [m["code"] for m in messages if m["type"] == "warning"]
    assert found == ["clipping", "silence"], found
    assert all(m["message"] for m in messages if m["type"] == "warning")
    assert messages[-1]["type"] == "done"


def _acked(ws, until: int) -> None:
    received = 0
    while received < until:
        message = ws.receive_json()
        received = message["received_bytes"] if message["type"] == "ack" else received


def test_a_node_at_capacity_refuses_new_streams_but_never_a_resume(app_settings, whisper):
    app = create_app(app_settings.model_copy(update={"stream_capacity": 1}), load_asr=False)
    with TestClient(app) as client:
        app.state.asr.serve({"encounter": whisper, "dictation": whisper})
        enrol(app.state.database, token())
        silence = b"\x00" * FRAME
        with connect(client, "enc-a") as first:
            start(first)
            first.send_bytes(silence)
            _acked(first, FRAME)
            with connect(client, "enc-b") as second:  # a new recording while the node is full: refused, retry later
                expect_error(second, "server_busy", 1013)
            # enc-a drops here, without stop: its audio waits for a resume
        with connect(client, "enc-c") as third:  # the freed place is taken by another new recording...
            assert start(third)["type"] == "ready"
            with connect(client, "enc-a") as again:  # ...yet the clinician mid-recording gets back in
                assert start(again) == {"type": "ready", "received_ms": 100, "received_bytes": FRAME}
                assert client.get("/healthz").json()["streams"]["live"] == 2
        streams = client.get("/healthz").json()["streams"]
        assert streams == {
            "live": 0,
            "capacity": 1,
            "final_rtf": None,
            "loaded_partial_rtf": None,
            "configured": True,
            "refused": 1,
        }
        metrics = client.get("/metrics").text
        assert "scribe_stream_capacity 1" in metrics and "scribe_streams_refused_total 1" in metrics
        with connect(client, "enc-b") as later:  # the refused encounter was left free: it streams once there is room
            assert start(later)["type"] == "ready"


def test_capacity_follows_the_measured_cost_of_finals(client):
    """Unconfigured, the node sizes itself from its finishing passes (partials under load, not measured on one quiet
    stream, taken to cost as much): what its streams need must fit its workers."""
    pcm = sample_pcm()
    with connect(client, "enc-m") as ws:
        start(ws)
        stream_all(ws, pcm)
    streams = client.get("/healthz").json()["streams"]
    admission = client.app.state.asr.admission
    assert streams["configured"] is False and streams["final_rtf"] > 0 and streams["live"] == 0
    assert streams["loaded_partial_rtf"] is None  # one stream alone: never under load
    assert streams["capacity"] == max(1, int(admission.workers * 0.8 / (2 * streams["final_rtf"])))


def test_a_draining_node_sends_the_owed_finals_then_moves_the_stream(client, app_settings):
    """SIGTERM's drain: the live stream gets the finals of the utterances that ended in its acked audio (stored), then
    `reconnect` and 1012 with its lease already free; the utterance under way is left whole for the resume; audio
    sent meanwhile is acked and stored, or neither; new streams and resumes go elsewhere."""
    import time

    from scribe.store.models import Encounter

    speech = sample_pcm()
    pause = int(8.5 * 16000) * 2  # in the pause after "...5 mg daily." (8.38 s): made 1 s longer, an utterance end
    pcm = speech[:pause] + bytes(32000) + speech[pause:]
    part = 10 * 32000  # up to 10 s: "Blood pressure..." is being spoken when the node drains
    messages: list[dict] = []
    with connect(client, "enc-d") as ws:
        start(ws)
        for i in range(0, part, FRAME):
            ws.send_bytes(pcm[i : i + FRAME])
        acked = 0
        while acked < part:
            messages.append(ws.receive_json())
            acked = messages[-1]["received_bytes"] if messages[-1]["type"] == "ack" else acked

        def keep_sending() -> None:  # the client goes on sending while the node drains
            try:
                for i in range(part, len(pcm), FRAME):
                    ws.send_bytes(pcm[i : i + FRAME])
                    time.sleep(0.01)
            except Exception:  # the server closed the stream: the rest is for the resume
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        time.sleep(0.05)
        drained = client.portal.start_task_soon(client.app.state.drain.run)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                messages.append(ws.receive_json())
        sender.join()
        with client.app.state.database.session() as session:  # free before the client is told to reconnect
            assert session.get(Encounter, "enc-d").stream_holder is None
    assert closed.value.code == 1012
    assert messages[-1] == {"type": "reconnect", "reason": "shutdown"}
    stored = (app_settings.audio_dir / "enc-d" / "audio.pcm").read_bytes()
    assert messages[-2] == {"type": "ack", "received_bytes": len(stored), "received_ms": len(stored) // 32}
    assert len(stored) >= part and stored == pcm[: len(stored)]  # every acked byte, nothing else, nothing twice
    finals = [m["segment"] for m in messages if m["type"] == "final"]
    assert [f["id"] for f in finals] == list(range(len(finals)))
    assert 8.0 <= finals[-1]["end"] <= 9.5, finals  # the ended utterance is final; the one under way is not
    segments = [json.loads(line) for line in (app_settings.audio_dir / "enc-d" / "segments.jsonl").open()]
    assert segments == finals

    health = client.get("/healthz").json()
    assert health["ready"] is False and "shutting down" in health["reason"]
    assert client.get("/v1/encounters/enc-d", headers={"Authorization": f"Bearer {token()}"}).status_code == 200
    for encounter in ("enc-new", "enc-d"):  # neither a new stream nor the resume is taken here any more
        with connect(client, encounter) as refused:
            error = refused.receive_json()
            assert error["code"] == "server_busy" and "shutting down" in error["message"]
            with pytest.raises(WebSocketDisconnect) as info:
                refused.receive_json()
            assert info.value.code == 1013
    drained.result(timeout=30)
    assert client.app.state.drain.live_streams == 0
