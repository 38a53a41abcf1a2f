"""SCRIBE_LOG_FORMAT=json: every log line is one JSON object with the node, request and encounter ids, still
redacted; each request's id comes from a sane X-Request-ID or is made, and goes back in the response; text
lines stay as they were."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from scribe import logs
from scribe.api.app import create_app
from scribe.config import Settings
from tests.accounts import KEY, enrol
from tests.accounts import token as mint
from tests.fake_stream import serve_fake_engine
from tests.helpers.server import free_port, launch_server, wait_until_serving


@pytest.fixture
def read_log(capsys):
    """A reader of the log lines written to stderr since the last read; the root handlers that the test's
    `configure_logging` replaced are put back afterwards (its handler writes to this test's captured stderr)."""
    before = logging.root.handlers[:]

    def read() -> list[str]:
        return [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    yield read
    logging.root.handlers[:] = before
    logging.captureWarnings(False)


def json_lines(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def test_json_lines_parse_and_carry_the_node_request_and_encounter_ids(read_log):
    read = read_log
    logs.configure_logging("info", "json", node_id="node-7")

    def in_a_stream() -> None:
        logs.request_id.set("req-1")
        logs.encounter_id.set("enc-9")
        logging.getLogger("scribe.streaming").info("stream closed after %d frames", 3)

    contextvars.copy_context().run(in_a_stream)
    logging.getLogger("uvicorn.error").warning("outside any request")
    first, second = json_lines(read())
    assert first == {
        **first,
        "level": "INFO",
        "logger": "scribe.streaming",
        "message": "stream closed after 3 frames",
        "node": "node-7",
        "request_id": "req-1",
        "encounter_id": "enc-9",
    }
    stamp = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0) and first["time"].endswith("Z")
    assert second["logger"] == "uvicorn.error" and second["level"] == "WARNING" and second["node"] == "node-7"
    assert "request_id" not in second and "encounter_id" not in second


def test_credentials_are_redacted_in_json_lines_too(read_log):
    read = read_log
    logs.configure_logging("info", "json", node_id="node-7")
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/v1/encounters/e/stream?ticket=S3CR3T"
    )
    logging.getLogger("httpx").warning("headers %s", {"Authorization": "Bearer S3CR3T"})
    try:
        raise ValueError("GET /x?access_token=S3CR3T failed")
    except ValueError:
        logging.getLogger("scribe.api").exception("failed with Cookie: scribe_session=S3CR3T")
    written = read()
    assert "S3CR3T" not in "\n".join(written)
    accepted, headers, failed = json_lines(written)
    assert accepted["message"] == '127.0.0.1:5000 - "WebSocket /v1/encounters/e/stream?ticket=[redacted]" [accepted]'
    assert headers["message"] == "headers {'Authorization': '[redacted]'}"
    assert "[redacted]" in failed["message"] and "access_token=[redacted]" in failed["exception"]


def test_the_text_format_is_unchanged(read_log):
    read = read_log
    logs.configure_logging("info", "text", node_id="node-7")
    logging.getLogger("scribe.api").warning("plain %s", "line")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING scribe\.api: plain line", read()[0])
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logs.configure_logging("info", "xml")


@pytest.fixture
def app(tmp_path, monkeypatch):
    app = create_app(Settings(data_dir=tmp_path, secret_key=KEY), load_asr=False)
    with TestClient(app) as client:
        serve_fake_engine(app, monkeypatch)
        app.state.client = client
        yield app


def test_each_request_has_an_id_in_its_response_and_its_access_line(app, read_log):
    read = read_log
    client = app.state.client
    logs.configure_logging("info", "json", node_id="node-7")
    given = client.get("/healthz", headers={"X-Request-ID": "edge-4f2a.1_x"})
    made = client.get("/healthz")
    refused = [client.get("/healthz", headers={"X-Request-ID": bad}) for bad in ("a b", "x" * 65, "name=Maria")]
    assert given.headers["X-Request-ID"] == "edge-4f2a.1_x"
    ids = [made.headers["X-Request-ID"]] + [r.headers["X-Request-ID"] for r in refused]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 4
    access = [line for line in json_lines(read()) if line["logger"] == "scribe.access"]
    assert [line["request_id"] for line in access] == ["edge-4f2a.1_x", *ids]
    assert access[0] == {**access[0], "method": "GET", "route": "/healthz", "status": 200, "node": "node-7"}
    assert "Maria" not in json.dumps(access)


def test_a_streams_log_lines_name_its_encounter(app, read_log):
    read = read_log
    client = app.state.client
    token = mint("dr-j")
    enrol(app.state.database, token)
    logs.configure_logging("info", "json", node_id="node-7")
    with client.websocket_connect(
        "/v1/encounters/enc-json-1/stream", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "ws-1"}
    ) as ws:
        ws.send_text(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1}))
        assert ws.receive_json()["type"] == "ready"
        assert ws.extra_headers is not None and (b"x-request-id", b"ws-1") in ws.extra_headers
    # the client left without stop: the session logs that its audio waits for a resume
    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while not any("kept for resume" in line["message"] for line in lines) and time.monotonic() < deadline:
        lines += json_lines(read())
        time.sleep(0.05)
    closed = next(line for line in lines if "kept for resume" in line["message"])
    assert closed == {**closed, "logger": "scribe.streaming", "encounter_id": "enc-json-1", "request_id": "ws-1"}


@pytest.mark.slow  # `scribe serve` subprocess
def test_a_real_server_writes_every_log_line_as_json(tmp_path: Path):
    """`scribe serve` with SCRIBE_LOG_FORMAT=json: uvicorn's lines, scribe's and the access log are JSON objects
    (what the command itself tells the operator, `scribe: …`, stays text), and a websocket ticket is redacted."""
    from websockets.sync.client import connect

    port = free_port()
    env = {"SCRIBE_LOG_FORMAT": "json", "SCRIBE_NODE_ID": "node-json-1"}
    server = launch_server(tmp_path / "data", port, asr=False, env=env)
    try:
        wait_until_serving(server, port, ready=False)
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "req-42"}, timeout=1)
        assert answer.headers["X-Request-ID"] == "req-42"
        with connect(f"ws://127.0.0.1:{port}/v1/encounters/enc-j/stream?ticket=SECRET-TICKET") as ws:
            assert '"unauthorized"' in ws.recv(timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "SECRET-TICKET" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip() and not line.startswith("scribe: ")]
    assert all(line["node"] == "node-json-1" for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "scribe.access"} <= loggers
    assert any(line["message"] == "Application startup complete." for line in lines)
    assert any(
        line["logger"] == "scribe.access" and line["route"] == "/healthz" and line["request_id"] == "req-42"
        for line in lines
    )
    assert any("ticket=[redacted]" in line["message"] for line in lines)
