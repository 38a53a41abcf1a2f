"""The streaming client's latency figures, against a scripted server (no network)."""

import asyncio
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scribe.streaming.client import stream_pcm


class ScriptedServer:
    """Answers `start` with `ready`, then plays `messages` once the client's `stop` arrives."""

    def __init__(self, messages: list[dict]) -> None:
        self.messages = messages
        self.stopped = asyncio.Event()

    def __call__(self, url, **kwargs):
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def send(self, data):
        if isinstance(data, str) and json.loads(data)["type"] == "stop":
            self.stopped.set()

    async def recv(self):
        return json.dumps({"type": "ready", "received_bytes": 0, "received_ms": 0})

    def __aiter__(self):
        return self._play()

    async def _play(self):
        await self.stopped.wait()
        for message in self.messages:
            yield json.dumps(message)


def _partial(text: str, end: float) -> dict:
    return {"type": "partial", "text": text, "start": 0.0, "end": end}


def test_partial_latency_counts_each_newly_heard_word_once():
    """A partial showing no word beyond those already shown (repeated, respelled, re-timed) is not counted again."""
    server = ScriptedServer(
        [
            _partial("atrial", 0.4),
            _partial("atrial", 0.4),
            _partial("Atrial", 0.4),  # respelled, no new word
            _partial("atrial fibrillation", 1.0),
            _partial("atrial fib", 0.8),  # revised back: nothing newly heard
            _partial("atrial fibrillation,", 1.06),  # the same last word, re-timed by a later pass
            {"type": "final", "segment": {"id": 0, "start": 0.0, "end": 1.0, "text": "Atrial fibrillation."}},
            _partial("", 1.0),
            _partial("follow", 1.4),
            {"type": "done", "transcript": {"text": "Atrial fibrillation. Follow"}},
        ]
    )
    result = asyncio.run(stream_pcm("ws://scripted", b"\0\0" * 1600, connect=server, realtime=True))
    assert len(result.partial_latencies) == 3
    assert len(result.final_latencies) == 1
    assert result.transcript == {"text": "Atrial fibrillation. Follow"}


def test_word_final_latency_counts_every_word_from_its_own_end():
    """Each word of a final is one sample, from the end of that word (not the segment's last word); a final without
    word times counts each word of its text at the segment end."""
    words = [{"word": "Atrial", "start": 0.0, "end": 0.4}, {"word": "fibrillation.", "start": 0.5, "end": 1.0}]
    server = ScriptedServer(
        [
            {
                "type": "final",
                "segment": {"id": 0, "start": 0.0, "end": 1.0, "text": "Atrial fibrillation.", "words": words},
            },
            {
                "type": "final",
                "segment": {"id": 0, "start": 0.0, "end": 1.0, "text": "Atrial fibrillation.", "words": words},
            },
            {"type": "final", "segment": {"id": 1, "start": 1.2, "end": 1.5, "text": "Follow up.", "words": []}},
            {"type": "done", "transcript": {"text": "Atrial fibrillation. Follow up."}},
        ]
    )
    result = asyncio.run(stream_pcm("ws://scripted", b"\0\0" * 32000, connect=server, realtime=True))
    assert len(result.final_latencies) == 2 and len(result.word_final_latencies) == 4  # a repeated final counts once
    atrial, fibrillation, follow, up = result.word_final_latencies
    assert atrial - fibrillation == pytest.approx(0.6, abs=0.05)  # the first word waited 0.6 s longer
    assert follow == up == pytest.approx(result.final_latencies[1], abs=1e-6)
    assert fibrillation == pytest.approx(result.final_latencies[0], abs=0.05)


SCRIPT = [
    _partial("atrial", 0.4),
    _partial("atrial fibrillation", 0.9),
    {"type": "final", "segment": {"id": 0, "start": 0.0, "end": 0.9, "text": "Atrial fibrillation."}},
    {"type": "done", "transcript": {"text": "Atrial fibrillation.", "engine": "whisper", "segments": []}},
]


@pytest.mark.parametrize("realtime", [False, True])
def test_latency_is_recorded_only_when_paced_in_real_time(realtime):
    """Unpaced, the audio is all sent at once and w - t0 - t would go negative: no figure is recorded at all."""
    result = asyncio.run(
        stream_pcm("ws://scripted", b"\0\0" * 16000, connect=ScriptedServer(SCRIPT), realtime=realtime)
    )
    latencies = result.partial_latencies + result.final_latencies
    assert result.finals and (len(latencies) == 3 if realtime else latencies == [])
    assert all(x >= 0 for x in latencies)


def one_second_wav(tmp_path: Path) -> Path:
    path = tmp_path / "one_second.wav"
    soundfile.write(path, np.zeros(16000, dtype=np.float32), 16000)
    return path


@pytest.mark.parametrize("realtime", [False, True])
def test_scribe_stream_never_prints_a_negative_latency(tmp_path, monkeypatch, capsys, realtime):
    from scribe.cli import run

    monkeypatch.setattr("websockets.connect", ScriptedServer(SCRIPT))
    code = run(
        [
            "stream",
            str(one_second_wav(tmp_path)),
            "--url",
            "ws://127.0.0.1:9/v1/encounters/e/stream",
            *(["--realtime"] if realtime else []),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == "Atrial fibrillation."
    [latency] = [line for line in err.splitlines() if "latency" in line]
    assert not re.search(r"-\d", latency)
    if realtime:
        assert re.search(r"final p50 \d+\.\d\ds p95 \d+\.\d\ds", latency)
    else:
        assert "latency: n/a (not paced in real time" in latency and "p50" not in latency


def test_bench_stream_paces_in_real_time_so_its_latencies_are_measurements(tmp_path, monkeypatch):
    from scribe.bench.stream import print_stream_table, run_stream_bench

    one_second_wav(tmp_path).with_suffix(".txt").write_text("atrial fibrillation")
    monkeypatch.setattr("websockets.connect", ScriptedServer(SCRIPT))
    summary = run_stream_bench("ws://127.0.0.1:9", None, tmp_path, [1])
    [session] = summary["rounds"][0]["sessions"]
    figures = [summary["rounds"][0][key] for key in ("partial_p50_s", "final_p50_s", "end_of_speech_p95_s")]
    assert all(x is not None and x >= 0 for x in figures) and session["end_of_speech_s"] >= 0
    table = io.StringIO()
    print_stream_table(summary, table)
    assert not re.search(r"-\d", table.getvalue())


class ScriptedConnection(ScriptedServer):
    """One connection: answers `start` with `first`; plays `messages` at once (or after `stop` when `after_stop`),
    then the server closes. Keeps the audio it was sent."""

    def __init__(self, first: dict, messages: list[dict], *, after_stop: bool = False) -> None:
        super().__init__(messages)
        self.first = first
        self.after_stop = after_stop
        self.audio = bytearray()

    async def send(self, data):
        if isinstance(data, bytes):
            self.audio += data
        await super().send(data)

    async def recv(self):
        return json.dumps(self.first)

    async def _play(self):
        if self.after_stop:
            await self.stopped.wait()
        for message in self.messages:
            yield json.dumps(message)


def _ready(received: int) -> dict:
    return {"type": "ready", "received_bytes": received, "received_ms": received // 32}


def _connections(*connections: ScriptedConnection):
    queue = iter(connections)
    return lambda url, **kwargs: next(queue)


DONE = [
    {"type": "final", "segment": {"id": 0, "start": 0.0, "end": 0.3, "text": "Hello."}},
    {"type": "done", "transcript": {"text": "Hello."}},
]


def test_reconnect_from_a_draining_node_resumes_at_once_and_is_no_failure():
    """`reconnect` + close (a node shutting down): the client reconnects without backoff, and even with no
    reconnects allowed for failures it goes on, from the server's `received_bytes`."""
    import time

    pcm = bytes(range(256)) * 50  # 12800 bytes, 0.4 s
    draining = ScriptedConnection(
        _ready(0),
        [{"type": "ack", "received_bytes": 3200, "received_ms": 100}, {"type": "reconnect", "reason": "shutdown"}],
    )
    elsewhere = ScriptedConnection(_ready(6400), DONE, after_stop=True)
    begun = time.monotonic()
    result = asyncio.run(stream_pcm("ws://scripted", pcm, connect=_connections(draining, elsewhere), max_reconnects=0))
    assert time.monotonic() - begun < 0.3  # a failure would wait 0.4 s before its first retry
    assert result.transcript == {"text": "Hello."} and result.reconnects == 1
    assert bytes(elsewhere.audio) == pcm[6400:]


def test_a_resume_refused_as_busy_is_retried_but_a_new_stream_is_not():
    """A node that drains (or still loads) refuses with server_busy: a resume retries with backoff; a new stream's
    refusal is the caller's to count (`scribe bench stream` counts it as refused)."""
    from scribe.streaming.client import StreamFailed

    pcm = b"\0\0" * 6400
    busy = {"type": "error", "code": "server_busy", "message": "this node is shutting down"}
    dropped = ScriptedConnection(_ready(0), [{"type": "ack", "received_bytes": 3200, "received_ms": 100}])
    refused = ScriptedConnection(busy, [])
    resumed = ScriptedConnection(_ready(3200), DONE, after_stop=True)
    result = asyncio.run(
        stream_pcm("ws://scripted", pcm, connect=_connections(dropped, refused, resumed), max_reconnects=2)
    )
    assert result.transcript == {"text": "Hello."} and result.reconnects == 2
    assert bytes(resumed.audio) == pcm[3200:]
    with pytest.raises(StreamFailed) as failed:
        asyncio.run(stream_pcm("ws://scripted", pcm, connect=_connections(ScriptedConnection(busy, []))))
    assert failed.value.code == "server_busy"


def test_a_resume_after_a_crash_waits_out_the_dead_nodes_lease(monkeypatch):
    """A node killed with its lease held: the next node answers `already_streaming` until the lease runs out. A
    resume retries that (however many times, within RESUME_PATIENCE_S) and each connection that reaches `ready`
    clears the count of failures in a row, so a long stream survives many drops."""
    from scribe.streaming.client import StreamFailed

    pcm = b"\0\0" * 6400
    held = {"type": "error", "code": "already_streaming", "message": "another connection is streaming"}
    ack = [{"type": "ack", "received_bytes": 3200, "received_ms": 100}]
    first, second = ScriptedConnection(_ready(0), ack), ScriptedConnection(_ready(3200), [])
    resumed = ScriptedConnection(_ready(3200), DONE, after_stop=True)
    connections = _connections(first, second, ScriptedConnection(held, []), ScriptedConnection(held, []), resumed)
    result = asyncio.run(stream_pcm("ws://scripted", pcm, connect=connections, max_reconnects=1))
    assert result.transcript == {"text": "Hello."} and result.reconnects == 4
    assert bytes(resumed.audio) == pcm[3200:]

    monkeypatch.setattr("scribe.streaming.client.RESUME_PATIENCE_S", 0.5)  # a lease that never runs out: give up
    never = _connections(ScriptedConnection(_ready(0), ack), *(ScriptedConnection(held, []) for _ in range(10)))
    with pytest.raises(StreamFailed) as failed:
        asyncio.run(stream_pcm("ws://scripted", pcm, connect=never, max_reconnects=1))
    assert failed.value.code == "already_streaming"
