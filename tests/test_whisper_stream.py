"""WhisperStream on the bundled Whisper: partials while speaking, never-revised finals near offline accuracy."""

from pathlib import Path

import numpy as np
import pytest

from scribe.asr import EngineChoice, load_engine
from scribe.asr.whisper import WhisperEngine
from scribe.audio import decode_audio
from scribe.config import Settings
from scribe.records import load_records
from scribe.transcript import Segment
from scribe.wer import word_errors
from streaming.whisper_stream import WhisperStream
from tests.conftest import SAMPLES

RATE = 16_000


@pytest.fixture
def whisper(settings: Settings) -> WhisperEngine:
    return load_engine(EngineChoice("whisper", None, "test"), settings)  # type: ignore[return-value]


def _stream(stream: WhisperStream, audio: np.ndarray) -> tuple[list[Segment], list[float]]:
    finals: list[Segment] = []
    partial_times: list[float] = []
    for at in range(0, len(audio), RATE // 10):
        stream.feed(audio[at:at + RATE // 10])
        if stream.needs_pass():
            update = stream.step()
            finals += update.finals
            if update.partial:
                partial_times.append(stream.time)
    finals += stream.flush().finals
    return finals, partial_times


@pytest.mark.parametrize("name", ["cardiology_followup", "thyroid_depression"])
def test_streamed_finals_match_offline_quality(whisper: WhisperEngine, name: str):
    wav = SAMPLES / f"{name}.wav"
    audio = np.concatenate([decode_audio(wav), np.zeros(RATE, np.float32)])
    context = load_records(Path(wav).with_name(name + ".bundle.json"))
    reference = wav.with_suffix(".txt").read_text()
    stream = WhisperStream(whisper, context=context, min_new_s=1.0)  # fewer passes: keeps the test short
    finals, partial_times = _stream(stream, audio)

    assert partial_times and min(partial_times) < len(audio) / RATE - 2
    assert [s.id for s in finals] == list(range(len(finals)))
    previous_end = 0.0
    for segment in finals:
        assert previous_end <= segment.start <= segment.end <= len(audio) / RATE
        assert segment.words and all(previous_end <= w.start <= w.end for w in segment.words)
        previous_end = segment.end
    streamed = word_errors(reference, " ".join(s.text for s in finals)).wer
    offline = word_errors(reference, whisper.transcribe(audio, context=context).text).wer
    assert streamed <= offline + 0.05, (streamed, offline)


def test_finals_are_never_revised(whisper: WhisperEngine):
    """Every final is reported once; later updates only add finals with larger ids."""
    audio = decode_audio(SAMPLES / "urology_asthma.wav")
    stream = WhisperStream(whisper, min_new_s=1.0)
    seen: dict[int, str] = {}
    for at in range(0, len(audio), RATE // 2):
        stream.feed(audio[at:at + RATE // 2])
        if stream.needs_pass():
            for segment in stream.step().finals:
                assert segment.id not in seen and segment.id == len(seen)
                seen[segment.id] = segment.text
    for segment in stream.flush().finals:
        assert segment.id == len(seen)
        seen[segment.id] = segment.text
    assert seen and stream.flush().finals == []


def test_silence_needs_no_pass_and_keeps_the_buffer_small(whisper: WhisperEngine):
    stream = WhisperStream(whisper)
    for _ in range(100):
        stream.feed(np.zeros(RATE // 10, np.float32))
        assert not stream.needs_pass()
    assert stream.buffered_seconds < 1.0
    update = stream.flush()
    assert update.finals == [] and update.partial == "" and update.pass_seconds == 0.0
