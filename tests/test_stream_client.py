"""The streaming client's latency figures, against a scripted server (no network)."""

import asyncio
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from streaming.client import stream_pcm


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
    server = ScriptedServer([
        _partial("atrial", 0.4), _partial("atrial", 0.4), _partial("Atrial", 0.4),  # respelled, no new word
        _partial("atrial fibrillation", 1.0), _partial("atrial fib", 0.8),  # revised back: nothing newly heard
        _partial("atrial fibrillation,", 1.06),  # the same last word, re-timed by a later pass
        {"type": "final", "segment": {"id": 0, "start": 0.0, "end": 1.0, "text": "Atrial fibrillation."}},
        _partial("", 1.0), _partial("follow", 1.4),
        {"type": "done", "transcript": {"text": "Atrial fibrillation. Follow"}},
    ])
    result = asyncio.run(stream_pcm("ws://scripted", b"\0\0" * 1600, connect=server, realtime=True))
    assert len(result.partial_latencies) == 3
    assert len(result.final_latencies) == 1
    assert result.transcript == {"text": "Atrial fibrillation. Follow"}


SCRIPT = [_partial("atrial", 0.4), _partial("atrial fibrillation", 0.9),
          {"type": "final", "segment": {"id": 0, "start": 0.0, "end": 0.9, "text": "Atrial fibrillation."}},
          {"type": "done", "transcript": {"text": "Atrial fibrillation.", "engine": "whisper", "segments": []}}]


@pytest.mark.parametrize("realtime", [False, True])
def test_latency_is_recorded_only_when_paced_in_real_time(realtime):
    """Unpaced, the audio is all sent at once and w - t0 - t would go negative: no figure is recorded at all."""
    result = asyncio.run(stream_pcm("ws://scripted", b"\0\0" * 16000, connect=ScriptedServer(SCRIPT),
                                    realtime=realtime))
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
    code = run(["stream", str(one_second_wav(tmp_path)), "--url", "ws://127.0.0.1:9/v1/encounters/e/stream",
                *(["--realtime"] if realtime else [])])
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
    summary = run_stream_bench("ws://127.0.0.1:9", None, tmp_path, 1)
    [session] = summary["rounds"][0]["sessions"]
    figures = [summary["rounds"][0][key] for key in ("partial_p50_s", "final_p50_s", "end_of_speech_p95_s")]
    assert all(x is not None and x >= 0 for x in figures) and session["end_of_speech_s"] >= 0
    table = io.StringIO()
    print_stream_table(summary, table)
    assert not re.search(r"-\d", table.getvalue())
