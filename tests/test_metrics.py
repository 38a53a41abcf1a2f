"""`/metrics` moves when the things it counts happen: ASR passes by kind, the pass queue, drafted notes by engine,
stream errors by code and refused streams. Streams use the fake engine (tests/fake_stream.py): fast and exact."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from scribe.api.app import create_app
from scribe.config import Settings
from tests.accounts import KEY, bearer, enrol
from tests.fake_stream import PASS_S, serve_fake_engine

FRAME = 3200  # 100 ms of 16 kHz s16le


@pytest.fixture
def app(tmp_path, monkeypatch):
    settings = Settings(
        data_dir=tmp_path,
        secret_key=KEY,
        note_engine="extractive",
        stream_capacity=1,
        ehr_fhir_url="http://127.0.0.1:9/fhir",
        delivery_interval_s=3600,
    )
    app = create_app(settings, load_asr=False)
    with TestClient(app) as client:
        serve_fake_engine(app, monkeypatch)
        enrol(app.state.database, bearer("dr-m"))
        app.state.client = client
        yield app


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one series of /metrics; 0 when it is not there yet."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if wanted else ''} (\S+)$", re.M)
    found = pattern.search(client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def start(ws) -> dict:
    ws.send_text(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1}))
    return ws.receive_json()


def stream_until_done(ws) -> list[dict]:
    """0.6 s of audio, wait for its partial, 0.4 s more, stop: every message up to `done`."""
    assert start(ws)["type"] == "ready"
    messages = []
    for _ in range(6):
        ws.send_bytes(b"\x01\x00" * (FRAME // 2))
    while not any(m["type"] == "partial" for m in messages):
        messages.append(ws.receive_json())
    for _ in range(4):
        ws.send_bytes(b"\x01\x00" * (FRAME // 2))
    ws.send_text(json.dumps({"type": "stop"}))
    while messages[-1]["type"] != "done":
        messages.append(ws.receive_json())
    return messages


def test_passes_by_kind_and_a_drafted_note_by_engine_move_the_counters(app):
    client = app.state.client
    labels = {"engine": "fake"}
    before = {kind: metric(client, "scribe_asr_passes_total", **labels, kind=kind) for kind in ("partial", "final")}
    seconds_before = metric(client, "scribe_asr_pass_seconds_total", **labels, kind="final")
    with client.websocket_connect("/v1/encounters/enc-metrics-1/stream", headers=bearer("dr-m")) as ws:
        messages = stream_until_done(ws)
    assert [m["segment"]["text"] for m in messages if m["type"] == "final"]
    assert metric(client, "scribe_asr_passes_total", **labels, kind="partial") >= before["partial"] + 1
    assert metric(client, "scribe_asr_passes_total", **labels, kind="final") == before["final"] + 1
    assert metric(client, "scribe_asr_pass_seconds_total", **labels, kind="final") >= seconds_before + PASS_S
    assert metric(client, "scribe_asr_pass_queue_depth", engine="fake") == 0

    drafted = metric(client, "scribe_notes_drafted_total", engine="extractive")
    drafting = metric(client, "scribe_note_draft_seconds_total", engine="extractive")
    assert client.post("/v1/encounters/enc-metrics-1/note", headers=bearer("dr-m")).status_code == 201
    assert metric(client, "scribe_notes_drafted_total", engine="extractive") == drafted + 1
    assert metric(client, "scribe_note_draft_seconds_total", engine="extractive") > drafting
    assert metric(client, "scribe_outbox_pending") == 0  # exported while an EHR is configured


def test_a_refused_stream_counts_as_refused_and_as_a_stream_error(app):
    client = app.state.client
    refused = metric(client, "scribe_streams_refused_total")
    busy = metric(client, "scribe_stream_errors_total", code="server_busy")
    unauthorized = metric(client, "scribe_stream_errors_total", code="unauthorized")
    assert metric(client, "scribe_stream_capacity") == 1
    with client.websocket_connect("/v1/encounters/enc-metrics-a/stream", headers=bearer("dr-m")) as first:
        assert start(first)["type"] == "ready"
        with client.websocket_connect("/v1/encounters/enc-metrics-b/stream", headers=bearer("dr-m")) as second:
            assert second.receive_json()["code"] == "server_busy"
        assert metric(client, "scribe_active_streams") == 1
    with client.websocket_connect("/v1/encounters/enc-metrics-c/stream") as anonymous:
        assert anonymous.receive_json()["code"] == "unauthorized"
    assert metric(client, "scribe_streams_refused_total") == refused + 1
    assert metric(client, "scribe_stream_errors_total", code="server_busy") == busy + 1
    assert metric(client, "scribe_stream_errors_total", code="unauthorized") == unauthorized + 1
    assert metric(client, "scribe_stream_errors_total", code="internal_error") == 0  # every code has a series


def test_the_pass_queue_depth_counts_passes_waiting_for_a_worker(app):
    client = app.state.client
    engine = app.state.asr.engine_for("encounter")
    scheduler = app.state.asr.scheduler_for(engine)
    release = threading.Event()
    started = threading.Event()

    def busy_pass() -> None:
        started.set()
        release.wait(10)

    runs = [threading.Thread(target=asyncio.run, args=(scheduler.run(busy_pass),))]
    runs[0].start()
    assert started.wait(5)  # the only worker is busy: the next passes queue
    runs += [threading.Thread(target=asyncio.run, args=(scheduler.run(lambda: None),)) for _ in range(2)]
    for run in runs[1:]:
        run.start()
    deadline = time.monotonic() + 5
    while scheduler.waiting < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert metric(client, "scribe_asr_pass_queue_depth", engine="fake") == 2
    finally:
        release.set()
        for run in runs:
            run.join(10)
    assert metric(client, "scribe_asr_pass_queue_depth", engine="fake") == 0
