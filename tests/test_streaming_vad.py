"""Endpointer: speech start/end events from faster-whisper's Silero VAD, run incrementally."""

import numpy as np
import pytest

from scribe.audio import decode_audio
from scribe.streaming.vad import WINDOW, Endpointer, VadEvent
from tests.conftest import SAMPLES

RATE = 16_000


def _run(audio: np.ndarray, sizes) -> list[VadEvent]:
    endpointer, events, at = Endpointer(), [], 0
    for size in sizes:
        if at >= len(audio):
            break
        events += endpointer.feed(audio[at : at + size])
        at += size
    return events


def _padded_sample() -> tuple[np.ndarray, float, float]:
    speech = decode_audio(SAMPLES / "cardiology_followup.wav")
    loud = np.nonzero(np.abs(speech) > 0.01)[0]
    audio = np.concatenate([np.zeros(2 * RATE, np.float32), speech, np.zeros(2 * RATE, np.float32)])
    return audio, 2 + loud[0] / RATE, 2 + loud[-1] / RATE


def test_sample_gives_one_start_and_a_prompt_end():
    audio, speech_start, speech_end = _padded_sample()
    rng = np.random.default_rng(7)
    events = _run(audio, rng.integers(1, 9000, size=10_000))
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert abs(start.time - speech_start) < 0.3 and start.detected_at - start.time < 0.1
    assert 0 <= end.detected_at - speech_end <= 0.6
    assert end.detected_at - end.time >= 0.5


def test_silence_gives_no_events():
    endpointer = Endpointer()
    assert [e for _ in range(50) for e in endpointer.feed(np.zeros(1600, np.float32))] == []
    assert not endpointer.is_speech and endpointer.time == pytest.approx(5.0, abs=0.04)


def test_events_do_not_depend_on_chunk_size():
    audio, _, _ = _padded_sample()
    small = _run(audio, [160] * (len(audio) // 160 + 1))
    large = _run(audio, [8000] * (len(audio) // 8000 + 1))
    assert [e.kind for e in small] == [e.kind for e in large]
    for a, b in zip(small, large, strict=True):
        assert abs(a.time - b.time) <= WINDOW / RATE and abs(a.detected_at - b.detected_at) <= WINDOW / RATE


def test_is_speech_follows_events_and_time_counts_windows():
    audio, _, _ = _padded_sample()
    endpointer = Endpointer()
    endpointer.feed(audio[: 4 * RATE])
    assert endpointer.is_speech
    endpointer.feed(audio[4 * RATE :])
    assert not endpointer.is_speech
    assert endpointer.time == len(audio) // WINDOW * WINDOW / RATE
