"""The streaming client's latency figures, against a scripted server (no network)."""

import asyncio
import json

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
    result = asyncio.run(stream_pcm("ws://scripted", b"\0\0" * 1600, connect=server))
    assert len(result.partial_latencies) == 3
    assert len(result.final_latencies) == 1
    assert result.transcript == {"text": "Atrial fibrillation. Follow"}
