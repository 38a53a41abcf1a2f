"""Request bodies are read through one bounded reader: refused before they are read, cut off at the limit,
audio spooled to disk and stored by a rename, long audio decoded a window at a time."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.asr.bundled_whisper import MODEL_NAME
from scribe.config import Settings
from tests.accounts import KEY, enrol
from tests.conftest import SAMPLES
from tests.helpers.audio import write_wav
from tests.helpers.clinic import DR_A, new_encounter, post_audio

MB = 1024 * 1024


@pytest.fixture
def api(tmp_path: Path, models_dir: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / MODEL_NAME).symlink_to(models_dir / MODEL_NAME)
    with TestClient(create_app(Settings(data_dir=tmp_path, secret_key=KEY), load_asr=False)) as client:
        enrol(client.app.state.database, DR_A)
        yield client


def send(app, method: str, path: str, headers: dict[str, str], chunks, *, declared: int | None = None):
    """Call the ASGI app with a body given chunk by chunk; (status, JSON answer, body bytes the app pulled)."""
    pulled = 0
    source = iter(chunks)
    answer: dict = {}

    async def receive():
        nonlocal pulled
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send_(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] = answer.get("body", b"") + message.get("body", b"")

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declared is not None:
        raw.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send_))
    return answer["status"], json.loads(answer["body"]), pulled


def endless(size: int = 64 * 1024, first: bytes = b""):
    yield first
    while True:
        yield b"\0" * size


FILE_PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'


def test_a_declared_body_over_the_limit_is_refused_before_any_of_it_is_read(api: TestClient):
    encounter = new_encounter(api)
    auth = {"Authorization": DR_A["Authorization"]}
    cases = [  # (route, media type, declared size): each just over its default limit
        (f"/v1/encounters/{encounter}/audio", "audio/ogg", 120 * 1000 * 1000),
        (f"/v1/encounters/{encounter}/records", "application/fhir+json", 10 * MB + 1),
        (f"/v1/encounters/{encounter}/images", "image/png", 50 * MB + 1),
        (f"/v1/encounters/{encounter}/images", "multipart/form-data; boundary=x", 50 * MB + 1),
        (f"/v1/encounters/{encounter}/note", "application/json", 64 * 1024 + 1),
        ("/v1/notes/any-note", "application/json", 2 * MB + 1),
        ("/v1/session", "application/x-www-form-urlencoded", 64 * 1024 + 1),
        ("/v1/stream-tickets", "application/json", 64 * 1024 + 1),
        ("/v1/encounters", "application/json", 64 * 1024 + 1),
    ]
    for path, media, size in cases:
        method = "PUT" if path.startswith("/v1/notes/") else "POST"
        status, body, pulled = send(api.app, method, path, {**auth, "Content-Type": media}, endless(), declared=size)
        assert (status, pulled) == (413, 0), (path, status, body)
        assert body["resourceType"] == "OperationOutcome" and "limit of" in body["issue"][0]["diagnostics"]


def test_a_chunked_body_is_cut_off_at_the_limit(api: TestClient):
    encounter = new_encounter(api)
    auth = {"Authorization": DR_A["Authorization"]}
    for path, media, limit in [
        (f"/v1/encounters/{encounter}/audio", "audio/ogg", 100 * MB),
        (f"/v1/encounters/{encounter}/images", "multipart/form-data; boundary=x", 50 * MB),
        ("/v1/notes/any-note", "application/json", 2 * MB),
    ]:
        method = "PUT" if path.startswith("/v1/notes/") else "POST"
        first = FILE_PART if media.startswith("multipart/") else b""
        status, body, pulled = send(api.app, method, path, {**auth, "Content-Type": media}, endless(1 * MB, first))
        assert status == 413 and body["issue"][0]["code"] == "too-long", (path, body)
        assert limit < pulled <= limit + 1 * MB, (path, pulled)
    assert not list((api.app.state.settings.audio_dir / "~incoming").iterdir())  # the cut-off spool is gone


def test_the_stored_upload_is_the_spooled_file_moved_into_place(api: TestClient):
    from scribe.store.models import AudioUpload

    encounter = new_encounter(api)
    audio = (SAMPLES / "urology_asthma.wav").read_bytes()
    response = post_audio(api, encounter, audio)
    assert response.status_code == 200, response.text
    with api.app.state.database.session() as session:
        [upload] = session.scalars(select(AudioUpload).where(AudioUpload.encounter_id == encounter)).all()
    settings = api.app.state.settings
    assert (settings.audio_dir / upload.path).read_bytes() == audio and upload.size_bytes == len(audio)
    assert list((settings.audio_dir / "~incoming").iterdir()) == []
    bad = post_audio(api, encounter, b"RIFF\0\0\0\0WAVEjunk" * 100)
    assert bad.status_code == 422 and "the upload" in bad.text and "~incoming" not in bad.text
    assert list((settings.audio_dir / "~incoming").iterdir()) == []


def test_a_node_sweeps_the_spool_files_it_left_when_it_starts(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, secret_key=KEY, node_id="node-a")
    spool = settings.audio_dir / "~incoming"
    spool.mkdir(parents=True)
    (spool / "node-a-1234.part").write_bytes(b"half an upload")
    (spool / "node-b-5678.part").write_bytes(b"another node's upload in flight")
    with TestClient(create_app(settings, load_asr=False)):
        assert sorted(p.name for p in spool.iterdir()) == ["node-b-5678.part"]


def test_a_multipart_image_within_the_limit_still_works(api: TestClient):
    from tests.helpers.clinic import png

    encounter = new_encounter(api)
    response = api.post(
        f"/v1/encounters/{encounter}/images", headers=DR_A, files={"file": ("a.png", png(), "image/png")}
    )
    assert response.status_code == 201 and response.json()["format"] == "png"
    broken = api.post(
        f"/v1/encounters/{encounter}/images",
        content=b"--x\r\nnonsense",
        headers={**DR_A, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code in (400, 422) and broken.json()["resourceType"] == "OperationOutcome"


def _long_wav(path: Path, minutes: float) -> np.ndarray:
    """A WAV of quiet noise with a tone every 7 s, `minutes` long; returns the samples as written."""
    rng = np.random.default_rng(1)
    count = int(minutes * 60 * 16000)
    samples = (rng.standard_normal(count) * 0.01).astype(np.float32)
    t = np.arange(16000) / 16000
    for start in range(0, count - 16000, 7 * 16000):
        samples[start : start + 16000] += 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    write_wav(path, pcm.tobytes())
    return pcm.astype(np.float32) / 32768


def test_long_audio_is_decoded_a_window_at_a_time(tmp_path: Path):
    """12 minutes (46 MB as float32) in 60 s windows: never more than a few windows in memory, nothing lost."""
    import tracemalloc

    from scribe.audio import decode_audio, decode_span, decode_windows, decoded_seconds

    path = tmp_path / "long.wav"
    expected = _long_wav(path, 12)
    tracemalloc.start()
    offsets, total = [], 0
    for offset, samples in decode_windows(path, window_s=60):
        assert len(samples) <= 60 * 16000
        assert offset * 16000 == pytest.approx(total)
        offsets.append(offset)
        total += len(samples)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == len(expected) and len(offsets) >= 12
    assert peak < 20 * MB, f"peak {peak / MB:.1f} MB while decoding in windows"
    assert decoded_seconds(path) == pytest.approx(12 * 60, abs=0.01)
    span = decode_span(path, 100.0, 101.5)
    assert np.allclose(span, expected[1600000:1624000], atol=1e-4)
    tracemalloc.start()
    whole = decode_audio(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(whole) == len(expected) and peak < whole.nbytes * 1.6  # grown in place, never two copies


def test_a_long_upload_is_transcribed_window_by_window_on_one_clock(tmp_path: Path):
    from scribe.audio import AudioLimits
    from scribe.transcript import Segment, Transcript, Word
    from scribe.uploads import transcribe_file

    path = tmp_path / "long.wav"
    _long_wav(path, 5)

    class Engine:
        name, model, workers = "fake", "fake", 1
        lengths: list[int] = []

        def transcribe(self, audio, *, context=None, progress=None):
            self.lengths.append(len(audio))
            return Transcript(
                "a b",
                "en",
                "fake",
                "fake",
                len(audio) / 16000,
                0.5,
                [Segment(0, 1.0, 2.0, "a", None, [Word("a", 1.0, 2.0)]), Segment(1, 3.0, 4.0, "b")],
            )

    transcript = transcribe_file(Engine(), path, AudioLimits(), None, window_s=60)
    windows = len(Engine.lengths)  # each window ends at its quietest moment, so 5 minutes make 6 windows
    assert windows == 6 and max(Engine.lengths) <= 60 * 16000 and sum(Engine.lengths) == 5 * 60 * 16000
    assert [s.id for s in transcript.segments] == list(range(2 * windows))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and 240 < starts[-2] < 300
    assert transcript.segments[2].words[0].start == transcript.segments[2].start == 1.0 + Engine.lengths[0] / 16000
    assert transcript.duration_s == pytest.approx(300, abs=0.01) and transcript.processing_s == 0.5 * windows
    assert transcript.text == " ".join(["a b"] * windows)


# ------------------------------------------------------------------------------------------ a real server


@pytest.mark.slow
def test_a_real_server_refuses_120_mb_early_and_its_memory_stays_flat(tmp_path: Path, models_dir: Path):
    """`scribe serve` with the default limits: a declared 120 MB body is answered 413 within a second having read
    under 1 MB; a chunked one is cut off at 100 MiB, spooled to disk, without the server's memory growing."""
    import httpx

    from scribe.auth.tokens import create_token
    from tests.accounts import KEY
    from tests.helpers.server import free_port, memory_kb, request_head, send_until_answered, start_server

    models = models_dir
    port = free_port()
    server = start_server(tmp_path / "data", port, models)
    try:
        token = create_token(KEY.encode(), "dr-a", ("user/*.*",), 600)
        enrol(tmp_path / "data", token)
        encounter = httpx.post(
            f"http://127.0.0.1:{port}/v1/encounters",
            json={"patient": {"id": "pt-1"}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["id"]
        path = f"/v1/encounters/{encounter}/audio"
        before = memory_kb(server.pid, reset_peak=True)

        head = request_head(port, path, token, "audio/ogg", 120_000_000)
        # only 64 KiB of the body ever leaves the client: the answer must come without the rest
        answer, sent, seconds = send_until_answered(port, head, [b"\0" * 65536], chunked=False)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        print(f"\ndeclared 120 MB: 413 after {seconds * 1000:.0f} ms; {sent} body bytes were ever sent")
        assert seconds < 1.0 and sent < 1024 * 1024

        head = request_head(port, path, token, "audio/ogg", None)
        answer, sent, seconds = send_until_answered(port, head, (b"\0" * MB for _ in range(120)), chunked=True)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        after = memory_kb(server.pid)
        growth = (after["VmHWM"] - before["VmRSS"]) / 1024
        print(
            f"chunked 120 MB: 413 after {sent / MB:.0f} MiB sent in {seconds:.1f} s; server RSS "
            f"{before['VmRSS'] / 1024:.0f} MB before, peak {after['VmHWM'] / 1024:.0f} MB "
            f"(growth {max(growth, 0):.0f} MB)"
        )
        assert 100 <= sent / MB <= 110 and growth <= 150
        assert not list((tmp_path / "data" / "audio" / "~incoming").iterdir())
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_real_server_transcribes_a_120_mb_upload_with_bounded_memory(tmp_path: Path, monkeypatch, models_dir: Path):
    """With the limit raised to 130 MiB, a 120 MB WAV (63 minutes: a dictation, then quiet) is spooled, stored and
    transcribed a window at a time: the server's peak memory grows by at most 150 MB."""
    import httpx

    from scribe.auth.tokens import create_token
    from tests.accounts import KEY
    from tests.helpers.server import free_port, memory_kb, start_server

    big = tmp_path / "long.wav"
    speech = (SAMPLES / "cardiology_followup.wav").read_bytes()
    with wave.open(io.BytesIO(speech)) as sample:
        assert (sample.getframerate(), sample.getnchannels(), sample.getsampwidth()) == (16000, 1, 2)
        frames = sample.readframes(sample.getnframes())
    with wave.open(str(big), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(frames)
        quiet = np.zeros(16000 * 60, dtype="<i2").tobytes()
        while out.tell() * 2 < 120_000_000:
            out.writeframes(quiet)
    size = big.stat().st_size
    monkeypatch.setenv("SCRIBE_MAX_AUDIO_BYTES", str(130 * MB))
    port = free_port()
    server = start_server(tmp_path / "data", port, models_dir)
    try:
        token = create_token(KEY.encode(), "dr-a", ("user/*.*",), 600)
        enrol(tmp_path / "data", token)
        headers = {"Authorization": f"Bearer {token}"}
        encounter = httpx.post(
            f"http://127.0.0.1:{port}/v1/encounters", json={"patient": {"id": "pt-1"}}, headers=headers
        ).json()["id"]
        warm = httpx.post(
            f"http://127.0.0.1:{port}/v1/encounters/{encounter}/audio",
            content=speech,
            headers={**headers, "Content-Type": "audio/wav"},
            timeout=300,
        )
        assert warm.status_code == 200  # the engine's first use allocates what it keeps
        warmed = memory_kb(server.pid)
        before = memory_kb(server.pid, reset_peak=True)

        def body():
            with open(big, "rb") as handle:
                while chunk := handle.read(MB):
                    yield chunk

        import time

        started = time.perf_counter()
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/encounters/{encounter}/audio",
            content=body(),
            headers={**headers, "Content-Type": "audio/wav", "Content-Length": str(size)},
            timeout=1800,
        )
        seconds = time.perf_counter() - started
        after = memory_kb(server.pid)
    finally:
        server.kill()
        server.wait(timeout=30)
    assert response.status_code == 200, response.text
    transcript = response.json()
    growth = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(
        f"\nafter a first short upload the server holds {warmed['VmRSS'] / 1024:.0f} MB "
        f"(it peaked at {warmed['VmHWM'] / 1024:.0f} MB)"
    )
    print(
        f"{size / 1e6:.0f} MB upload ({transcript['duration_s'] / 60:.0f} min) transcribed in {seconds:.0f} s; "
        f"server RSS {before['VmRSS'] / 1024:.0f} MB before, peak {after['VmHWM'] / 1024:.0f} MB "
        f"(growth {max(growth, 0):.0f} MB)"
    )
    assert "148 over 92" in transcript["text"]
    assert transcript["duration_s"] == pytest.approx(size / 32000, abs=1)
    assert growth <= 150
