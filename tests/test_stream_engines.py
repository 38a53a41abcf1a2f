"""The service streams each encounter with its mode's engine (a dictation with the tiny MedASR, a conversation with
Whisper) through the real websocket, and refuses to serve, or says it is not ready, when the engine cannot."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from scribe.api import asr_state
from scribe.api.app import create_app
from scribe.api.asr_state import AsrState
from scribe.audio import decode_audio
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.streaming.client import pcm16
from scribe.wer import word_errors
from tests.accounts import KEY, bearer, enrol, token
from tests.conftest import SAMPLES
from tests.helpers.server import free_port, run_scribe
from tests.helpers.stream import FRAME, connect, expect_error, sample_pcm, start, stream_all

RATE = 16_000


def service_settings(data_dir: Path, bundled_whisper: Path, **overrides) -> Settings:
    """A data directory whose models are the bundled Whisper (assembled once per run) and whatever the test adds."""
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    if not (data_dir / "models" / bundled_whisper.name).exists():
        (data_dir / "models" / bundled_whisper.name).symlink_to(bundled_whisper)
    return Settings(data_dir=data_dir, secret_key=KEY, asr_device="cpu", **overrides)


@pytest.fixture(scope="module")
def bundled_whisper(models_dir: Path) -> Path:
    from scribe.asr.bundled_whisper import MODEL_NAME

    return models_dir / MODEL_NAME


@pytest.fixture(scope="module")
def with_medasr(tmp_path_factory: pytest.TempPathFactory, tiny_medasr_dir: Path, bundled_whisper: Path) -> Settings:
    """`auto` with MedASR's weights pulled into the data directory, as `scribe models pull medasr` puts them."""
    data_dir = tmp_path_factory.mktemp("service")
    shutil.copytree(tiny_medasr_dir, data_dir / "models" / "medasr")
    return service_settings(data_dir, bundled_whisper)


@pytest.fixture
def client(with_medasr: Settings):
    app = create_app(with_medasr)
    with TestClient(app) as test_client:
        assert app.state.asr.loaded.wait(300)
        enrol(app.state.database, token())
        yield test_client


def dictation(client: TestClient) -> str:
    created = client.post("/v1/encounters", json={"patient": {"id": "pt-1001"}, "mode": "dictation"}, headers=bearer())
    assert created.status_code == 201
    return created.json()["id"]


def pcm_audio(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


@pytest.mark.slow  # the app loads the bundled Whisper
def test_health_lists_the_engine_of_each_mode(client: TestClient):
    body = client.get("/healthz").json()
    assert body["ready"] is True and body["reason"] is None
    modes = body["engines"]["asr_modes"]
    assert modes["dictation"]["name"] == "medasr" and "MedASR weights found" in modes["dictation"]["reason"]
    assert modes["encounter"]["name"] == "whisper" and "encounter" in modes["encounter"]["reason"]
    assert body["engines"]["asr"] == modes["encounter"]
    assert "scribe_asr_ready 1" in client.get("/metrics").text


@pytest.mark.slow  # the app loads the bundled Whisper
def test_a_dictation_streams_with_medasr(client: TestClient):
    pcm = sample_pcm()
    encounter = dictation(client)
    with connect(client, encounter) as ws:
        start(ws)
        messages = stream_all(ws, pcm)
    assert messages[-1]["type"] == "done"
    partials = [m for m in messages if m["type"] == "partial" and m["text"]]
    finals = [m["segment"] for m in messages if m["type"] == "final"]
    assert partials and len(finals) >= 2 and [f["id"] for f in finals] == list(range(len(finals)))
    transcript = messages[-1]["transcript"]
    assert transcript["engine"] == "medasr" and transcript["model"].startswith("medasr@")
    assert transcript["segments"] == finals
    stored = client.get(f"/v1/encounters/{encounter}/transcript", headers=bearer()).json()
    assert stored["engine"] == "medasr" and stored["text"] == transcript["text"]
    # the same words as the offline engine on the same audio (gibberish from random weights, but deterministic)
    offline = client.app.state.asr.engine_for("dictation").transcribe(pcm_audio(pcm))
    assert word_errors(offline.text, transcript["text"]).wer <= 0.3


@pytest.mark.slow  # the app loads the bundled Whisper
def test_a_dictation_resumes_after_a_dropped_socket(client: TestClient, with_medasr: Settings):
    """Two utterances; the socket drops after the first one's final, during the second, and the stream resumes."""
    first = pcm_audio(sample_pcm())
    second = decode_audio(SAMPLES / "thyroid_depression.wav")[: RATE * 6]
    pcm = pcm16(np.concatenate([first, np.zeros(RATE * 3 // 2, np.float32), second]))
    encounter = dictation(client)
    drop = (len(first) + RATE * 3) * 2 // FRAME * FRAME  # 1.5 s into the second utterance
    before: list[dict] = []
    with connect(client, encounter) as ws:
        start(ws)
        for i in range(0, drop, FRAME):
            ws.send_bytes(pcm[i : i + FRAME])
        acked = 0
        while acked < drop or not any(m["type"] == "final" for m in before):
            message = ws.receive_json()
            before.append(message)
            acked = message["received_bytes"] if message["type"] == "ack" else acked
        # the connection drops here: no stop
    finals_before = [m["segment"] for m in before if m["type"] == "final"]
    assert finals_before[-1]["end"] <= len(first) / RATE + 0.5
    with connect(client, encounter) as ws:
        ready = start(ws)
        assert ready["received_bytes"] >= drop
        messages = stream_all(ws, pcm[ready["received_bytes"] :])
    first_ack = next(i for i, m in enumerate(messages) if m["type"] == "ack")
    replayed = [m["segment"] for m in messages[:first_ack] if m["type"] == "final"]  # sent at once after ready
    assert replayed[: len(finals_before)] == finals_before  # every stored final again, first
    transcript = messages[-1]["transcript"]
    assert transcript["engine"] == "medasr" and len(transcript["segments"]) > len(replayed)
    assert transcript["segments"][: len(replayed)] == replayed
    assert [s["id"] for s in transcript["segments"]] == list(range(len(transcript["segments"])))
    starts = [s["start"] for s in transcript["segments"]]
    assert transcript["duration_s"] == pytest.approx(len(pcm) / 32000, abs=0.001)  # whole milliseconds
    assert starts == sorted(starts) and transcript["segments"][-1]["end"] <= transcript["duration_s"]
    assert transcript["segments"][len(replayed)]["start"] >= replayed[-1]["end"]
    assert (with_medasr.audio_dir / encounter / "audio.pcm").read_bytes() == pcm
    # the resumed session recognised the audio after the last stored final again, as the offline engine hears it
    offset = int(replayed[-1]["end"] * RATE)
    offline = client.app.state.asr.engine_for("dictation").transcribe(pcm_audio(pcm)[offset:])
    resumed = " ".join(s["text"] for s in transcript["segments"][len(replayed) :])
    assert word_errors(offline.text, resumed).wer <= 0.3


@pytest.mark.slow  # the app loads the bundled Whisper
def test_a_conversation_still_streams_with_whisper(client: TestClient):
    pcm = sample_pcm()[: 32000 * 4]
    with connect(client, "enc-conversation") as ws:  # a new id: an encounter (conversation) of this clinician
        start(ws)
        messages = stream_all(ws, pcm)
    assert messages[-1]["type"] == "done" and messages[-1]["transcript"]["engine"] == "whisper"


@pytest.mark.slow  # a CLI subprocess
def test_configured_medasr_without_weights_stops_serve(tmp_path: Path):
    env = {"SCRIBE_DATA_DIR": str(tmp_path), "SCRIBE_SECRET_KEY": KEY, "SCRIBE_ASR_ENGINE": "medasr"}
    proc = run_scribe("serve", "--port", free_port(), env=env)
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("scribe: error: SCRIBE_ASR_ENGINE=medasr cannot serve: MedASR weights not found")
    assert "scribe models pull medasr" in last and "Traceback" not in proc.stderr


def test_healthz_is_not_ready_while_loading_nor_after_the_engine_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    gate = threading.Event()
    real_load = asr_state.load_engine

    def slow_load(choice, settings, **kwargs):
        assert gate.wait(60)
        return real_load(choice, settings, **kwargs)

    monkeypatch.setattr(asr_state, "load_engine", slow_load)
    fatal: list[str] = []
    app = create_app(Settings(data_dir=tmp_path, secret_key=KEY, asr_engine="medasr"), on_asr_failure=fatal.append)
    with TestClient(app) as client:
        enrol(app.state.database, token())
        loading = client.get("/healthz").json()
        assert loading["ready"] is False and loading["reason"] == "speech recognition is loading"
        with connect(client, "enc-early") as ws:
            expect_error(ws, "server_busy", 1013)
        gate.set()
        assert app.state.asr.loaded.wait(60)
        failed = client.get("/healthz").json()
        assert failed["ready"] is False and failed["engines"]["asr_modes"] == {"encounter": None, "dictation": None}
        assert failed["reason"].startswith("SCRIBE_ASR_ENGINE=medasr cannot serve: MedASR weights not found")
        assert fatal == [failed["reason"]]
        assert "scribe_asr_ready 0" in client.get("/metrics").text
        with connect(client, "enc-late") as ws:
            expect_error(ws, "server_busy", 1013)


@pytest.mark.slow  # the app loads the bundled Whisper
def test_auto_sends_dictation_to_whisper_when_medasr_cannot_load(tmp_path: Path, bundled_whisper: Path):
    broken = tmp_path / "data" / "models" / "medasr"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model_type": "lasr_ctc"}')
    (broken / "model.safetensors").write_bytes(b"not weights")
    state, fatal = AsrState(), []
    state.load(service_settings(tmp_path / "data", bundled_whisper), on_fatal=fatal.append)
    assert state.ready and not fatal
    assert state.engine_for("dictation") is state.engine_for("encounter")
    assert state.describe()["dictation"]["reason"].startswith("auto: MedASR cannot serve (")


def test_a_configured_model_streams_every_mode(tmp_path: Path, tiny_medasr_dir: Path):
    state = AsrState()
    state.load(Settings(data_dir=tmp_path, asr_model=str(tiny_medasr_dir), asr_device="cpu"))
    assert state.ready and state.engine_for("encounter") is state.engine_for("dictation")
    assert state.engine_for("encounter").name == "medasr"
    assert {info["reason"] for info in state.describe().values()} == {f"SCRIBE_ASR_MODEL={tiny_medasr_dir}"}


class Unstreamable:
    name, model, workers = "kaldi", "kaldi-1", 1


def test_an_engine_that_cannot_stream_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(asr_state, "load_engine", lambda choice, settings, **kwargs: Unstreamable())
    state, fatal = AsrState(), []
    state.load(Settings(data_dir=tmp_path), on_fatal=fatal.append)  # auto: not ready, but not fatal
    assert not state.ready and "kaldi engine cannot stream" in state.status and not fatal
    state = AsrState()
    state.load(Settings(data_dir=tmp_path, asr_engine="whisper"), on_fatal=fatal.append)
    assert fatal == [state.status] and state.status.startswith("SCRIBE_ASR_ENGINE=whisper cannot serve: the kaldi")
    with pytest.raises(RuntimeError):
        state.engine_for("encounter")
    with pytest.raises(EngineUnavailableError):
        asr_state.recogniser_class("kaldi")
