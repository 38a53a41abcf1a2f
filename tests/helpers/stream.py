"""Speaking the websocket protocol from a test: connect with a token, start, stream 100 ms frames, expect an error."""

from __future__ import annotations

import json
import threading

import pytest
from starlette.websockets import WebSocketDisconnect

from scribe.audio import decode_audio
from scribe.streaming.client import pcm16
from tests.accounts import token
from tests.conftest import SAMPLES

SAMPLE = SAMPLES / "cardiology_followup.wav"
FRAME = 3200  # 100 ms at 16 kHz s16le


def connect(client, encounter="enc-1", subject="dr-a", headers=None, query=""):
    headers = {"Authorization": f"Bearer {token(subject)}"} if headers is None else headers
    return client.websocket_connect(f"/v1/encounters/{encounter}/stream{query}", headers=headers)


def start(ws, rate=16000, **extra):
    ws.send_text(json.dumps({"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "channels": 1, **extra}))
    return ws.receive_json()


def expect_error(ws, code: str, close_code: int) -> None:
    message = ws.receive_json()
    assert message["type"] == "error" and message["code"] == code, message
    with pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == close_code


def sample_pcm() -> bytes:
    return pcm16(decode_audio(SAMPLE))


def stream_all(ws, pcm: bytes) -> list[dict]:
    """Send `pcm` in 100 ms frames then stop; collect every message up to `done`."""

    def sender():
        for i in range(0, len(pcm), FRAME):
            ws.send_bytes(pcm[i : i + FRAME])
        ws.send_text(json.dumps({"type": "stop"}))

    thread = threading.Thread(target=sender)
    thread.start()
    messages = []
    while True:
        message = ws.receive_json()
        messages.append(message)
        if message["type"] in ("done", "error"):
            break
    thread.join()
    return messages
