"""A streaming engine that answers at once, for tests of what happens around passes (metrics, logs), not of
recognition: a partial after every half second of new audio, one final of the whole input when it ends.

`serve_fake_engine` registers its recogniser (the registry maps engine names to recognisers) and makes the
app's node stream every mode with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from scribe.streaming import recogniser
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate
from scribe.streaming.vad import SAMPLE_RATE
from scribe.transcript import Segment

TEXT = "Patient reports chest pain since Monday. Takes aspirin 81 mg daily."
PARTIAL_EVERY = SAMPLE_RATE // 2
PASS_S = 0.005  # each pass takes this much wall time, so the seconds the metrics add up are not zero


@dataclass
class FakeEngine:
    name: str = "fake"
    model: str = "fake@1"
    workers: int = 1


class FakeStream(StreamingRecogniser):
    def __init__(self, engine: FakeEngine, context=None) -> None:
        super().__init__()
        self._passed_at = 0  # samples fed when the last pass ran

    def _heard(self, events) -> None:
        pass  # no endpoints: the only final comes when the input ends

    def _worth_a_pass(self) -> bool:
        return self._total - self._passed_at >= PARTIAL_EVERY

    def _trim(self) -> None:
        pass  # a test streams a few seconds at most

    def step(self) -> StreamUpdate:
        began = time.perf_counter()
        time.sleep(PASS_S)
        with self._lock:
            self._passed_at = self._total
            end = self._total / SAMPLE_RATE
            if self._input_ended:
                self._finished = True
                final = Segment(0, 0.0, end, TEXT, None, [])
                return StreamUpdate(
                    finals=[final], pass_seconds=time.perf_counter() - began, audio_end=end, final_pass_audio_s=end
                )
        return StreamUpdate(
            partial=TEXT[:20],
            partial_start=0.0,
            partial_end=end,
            pass_seconds=time.perf_counter() - began,
            audio_end=end,
        )


def serve_fake_engine(app, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """Stream every mode of `app`'s node with a FakeEngine from now on."""
    monkeypatch.setitem(recogniser._RECOGNISERS, "fake", (__name__, "FakeStream"))
    engine = FakeEngine()
    app.state.asr.serve({"encounter": engine, "dictation": engine})
    return engine
