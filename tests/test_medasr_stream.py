"""MedASR streaming (chunked CTC with left context) on the tiny random MedASR: frames, finals, offline agreement."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="MedASR needs torch (pip install scribe[gpu])")
pytest.importorskip("transformers", reason="MedASR needs transformers>=5 (pip install scribe[gpu])")

from scribe.asr.medasr import MedAsrEngine  # noqa: E402
from scribe.audio import decode_audio  # noqa: E402
from scribe.config import Settings  # noqa: E402
from scribe.records import load_records  # noqa: E402
from scribe.streaming.medasr_stream import ChunkedFrames, MedAsrStream  # noqa: E402
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate  # noqa: E402
from scribe.streaming.whisper_stream import WhisperStream  # noqa: E402
from scribe.transcript import Segment  # noqa: E402
from scribe.wer import word_errors  # noqa: E402
from tests.conftest import SAMPLES  # noqa: E402
from tests.test_medasr import GEOM, FakeModel  # noqa: E402

RATE = 16_000
SAMPLE = SAMPLES / "cardiology_followup.wav"


@pytest.fixture(scope="module")
def engine(tiny_medasr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> MedAsrEngine:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_device="cpu", asr_threads=2)
    return MedAsrEngine.load(str(tiny_medasr_dir), settings)


class AlwaysSpeech:
    """An endpointer that hears one utterance from start to end: only the end of input (or length) cuts it."""

    is_speech = True

    def feed(self, chunk: np.ndarray) -> list:
        return []


def run(
    stream: StreamingRecogniser, audio: np.ndarray, step_s: float = 0.1
) -> tuple[list[Segment], list[StreamUpdate]]:
    """Feed `audio` as a session does, a pass whenever one is due; the finals and every update."""
    finals: list[Segment] = []
    updates: list[StreamUpdate] = []
    step = int(step_s * RATE)
    for at in range(0, len(audio), step):
        stream.feed(audio[at : at + step])
        if stream.needs_pass():
            updates.append(stream.step())
            finals += updates[-1].finals
    updates.append(stream.flush())
    finals += updates[-1].finals
    assert stream.finished and not stream.needs_pass()
    return finals, updates


def test_the_engine_picks_its_recogniser(engine: MedAsrEngine) -> None:
    assert isinstance(StreamingRecogniser.for_engine(engine), MedAsrStream)
    assert issubclass(WhisperStream, StreamingRecogniser)


def test_chunks_with_left_context_give_the_whole_pass_frames(engine: MedAsrEngine) -> None:
    """Each frame once, in place; values as a whole pass gives them, within what distant audio changes."""
    audio = decode_audio(SAMPLE)
    whole = engine.frame_log_probs(engine.pad_end(audio))
    chunks = ChunkedFrames(engine, left_context_s=4.0, right_context_s=0.5)
    stable, kept = 0, []
    for end in [*range(RATE, len(audio), RATE), len(audio)]:
        frames, pending, heard = chunks.compute(audio[:end], 0, stable, last=end == len(audio))
        assert heard == end
        assert len(frames) + len(pending) == GEOM.frames_for_samples(end) - stable or end == len(audio)
        kept.append(frames)
        stable += len(frames)
    chunked = np.concatenate(kept)
    assert chunked.shape == whole.shape
    # measured on this sample: 97 % of frames have the same best token, posteriors within 0.10
    assert (chunked.argmax(axis=1) == whole.argmax(axis=1)).mean() >= 0.93
    assert np.abs(np.exp(chunked) - np.exp(whole)).max() <= 0.2
    # with all the audio as context, a chunk is the whole pass exactly
    everything, _, _ = ChunkedFrames(engine, left_context_s=60.0, right_context_s=0.5).compute(audio, 0, 0, last=True)
    np.testing.assert_allclose(everything, whole, atol=1e-5)


@pytest.mark.parametrize(("records", "step_s"), [(False, 0.1), (True, 0.1), (False, 60.0)])
def test_stitching_loses_and_repeats_nothing(
    engine: MedAsrEngine, monkeypatch: pytest.MonkeyPatch, records: bool, step_s: float
) -> None:
    """With frames that depend only on their own audio (garbage within the context edges, as the offline
    stitching test has them), the streamed finals are exactly the offline transcript, hotword bias included,
    whether audio comes in 100 ms frames or all at once (a resumed stream's backlog: windows of at most 20 s)."""
    audio = np.arange(int(45.3 * RATE), dtype=np.float32)  # each sample its own index: a window knows where it is
    fake = FakeModel(GEOM.frames_for_samples(len(engine.pad_end(audio))), context=10)
    context = load_records(SAMPLE.with_name("cardiology_followup.bundle.json")) if records else None
    monkeypatch.setattr(engine, "log_probs", fake)
    offline = engine.transcribe(audio, context=context)
    heard: list[float] = []
    monkeypatch.setattr(
        engine, "log_probs", lambda windows: heard.extend(len(w) / RATE for w in windows) or fake(windows)
    )
    stream = MedAsrStream(engine, context=context, max_utterance_s=60.0, endpointer=AlwaysSpeech())  # type: ignore[arg-type]
    finals, updates = run(stream, audio, step_s)
    assert offline.segments and finals == offline.segments
    if step_s < 1:
        assert sum(bool(u.partial) for u in updates) >= 40  # a partial about every second
    else:
        assert max(heard) <= 20.0 and sum(heard) < 2 * len(audio) / RATE  # a backlog in windows of at most 20 s


def test_an_overlong_utterance_is_cut_between_words(engine: MedAsrEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = np.arange(int(40 * RATE), dtype=np.float32)
    monkeypatch.setattr(engine, "log_probs", FakeModel(GEOM.frames_for_samples(len(engine.pad_end(audio))), context=10))
    offline = engine.transcribe(audio)
    stream = MedAsrStream(engine, max_utterance_s=8.0, endpointer=AlwaysSpeech())  # type: ignore[arg-type]
    finals, updates = run(stream, audio)
    early = [u for u in updates[:-1] if u.finals]
    assert len(early) >= 3 and all(u.audio_end - u.finals[-1].end < 9.5 for u in early)
    assert [s.id for s in finals] == list(range(len(finals)))
    words = [w for s in finals for w in s.words]
    assert all(a.end <= b.start for a, b in pairwise(words))
    # cut only where no word is: the same words at the same times as one offline pass
    offline_words = [w for s in offline.segments for w in s.words]
    assert len(words) == len(offline_words)
    assert [w.word.lower() for w in words] == [w.word.lower() for w in offline_words]
    # the times of a later utterance add its offset: ±1 ms rounding
    for word, alone in zip(words, offline_words, strict=True):
        assert word.start == pytest.approx(alone.start, abs=1.5e-3) and word.end == pytest.approx(alone.end, abs=1.5e-3)


@pytest.mark.slow  # the tiny MedASR, but over a whole sample: about 5 s
def test_streamed_speech_agrees_with_offline(engine: MedAsrEngine) -> None:
    """Real speech through the VAD: partials while speaking, finals per utterance, close to one offline pass."""
    audio = np.concatenate([decode_audio(SAMPLE), np.zeros(RATE, np.float32)])
    context = load_records(SAMPLE.with_name("cardiology_followup.bundle.json"))
    finals, updates = run(MedAsrStream(engine, context=context), audio)
    duration = len(audio) / RATE
    partial_ends = [u.audio_end for u in updates if u.partial]
    assert partial_ends and min(partial_ends) < duration - 5
    assert len(finals) >= 2 and [s.id for s in finals] == list(range(len(finals)))
    previous = 0.0
    for segment in finals:
        assert segment.words and previous <= segment.start <= segment.end <= duration
        assert segment.start == segment.words[0].start and segment.end == segment.words[-1].end
        for word in segment.words:
            assert previous <= word.start <= word.end and 0.0 <= word.probability <= 1.0
            previous = word.end
        for ch in "{}[]<>":
            assert ch not in segment.text  # formatted as dictation, as offline
    offline = engine.transcribe(audio, context=context)
    streamed = " ".join(s.text for s in finals)
    assert word_errors(offline.text, streamed).wer <= 0.3  # measured: 0.09 (the random model's words are gibberish)


@pytest.mark.slow  # the tiny MedASR, but over a whole sample: about 6 s
def test_a_backlog_keeps_its_utterances_apart(engine: MedAsrEngine) -> None:
    """Audio fed at once (a resumed stream) ends each of its utterances where the VAD heard it end, as live."""
    first = decode_audio(SAMPLE)
    gap = len(first) / RATE, len(first) / RATE + 1.5  # silence between two dictations
    audio = np.concatenate(
        [
            first,
            np.zeros(RATE * 3 // 2, np.float32),
            decode_audio(SAMPLES / "thyroid_depression.wav")[: RATE * 6],
            np.zeros(RATE, np.float32),
        ]
    )
    live, _ = run(MedAsrStream(engine), audio)
    backlog, _ = run(MedAsrStream(engine), audio, step_s=60.0)
    for finals in (live, backlog):
        assert any(a.end <= gap[0] + 0.5 and b.start >= gap[0] for a, b in pairwise(finals))
        assert finals[-1].start >= gap[1] - 0.5
    # windows of 20 s instead of 1 s chunks: random weights react to any change of context (measured 0.28)
    assert word_errors(" ".join(s.text for s in live), " ".join(s.text for s in backlog)).wer <= 0.4


def test_silence_runs_no_pass(engine: MedAsrEngine) -> None:
    stream = MedAsrStream(engine)
    for _ in range(50):
        stream.feed(np.zeros(RATE // 10, np.float32))
        assert not stream.needs_pass()
    assert stream.buffered_seconds <= 4.5  # only the left context and pre-roll are kept
    last = stream.flush()
    assert last.finals == [] and stream.finished
