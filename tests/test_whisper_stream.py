"""WhisperStream on the bundled Whisper: partials while speaking, never-revised finals near offline accuracy."""

import threading
from pathlib import Path

import numpy as np
import pytest

from scribe.asr import EngineChoice, load_engine
from scribe.asr.hallucinations import loop_start
from scribe.asr.whisper import WhisperEngine
from scribe.audio import decode_audio
from scribe.config import Settings
from scribe.records import load_records
from scribe.streaming.whisper_stream import StreamUpdate, WhisperStream
from scribe.streaming.window_decoder import WindowDecoder
from scribe.transcript import Segment, Word
from scribe.wer import word_errors
from tests.conftest import SAMPLES

RATE = 16_000


@pytest.fixture
def whisper(settings: Settings) -> WhisperEngine:
    return load_engine(EngineChoice("whisper", None, "test"), settings)  # type: ignore[return-value]


def _stream(stream: WhisperStream, audio: np.ndarray) -> tuple[list[Segment], list[float]]:
    finals: list[Segment] = []
    partial_times: list[float] = []
    for at in range(0, len(audio), RATE // 10):
        stream.feed(audio[at : at + RATE // 10])
        if stream.needs_pass():
            update = stream.step()
            finals += update.finals
            if update.partial:
                partial_times.append(stream.time)
    finals += stream.flush().finals
    return finals, partial_times


def test_streamed_finals_read_as_offline(whisper: WhisperEngine):
    """Finals come from the pass over the whole utterance, as offline decodes a voice-detected chunk: the same words."""
    for name in ("cardiology_followup", "thyroid_depression"):
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
        streamed = " ".join(s.text for s in finals)
        offline = whisper.transcribe(audio, context=context).text
        assert word_errors(offline, streamed).errors == 0, (streamed, offline)
        assert word_errors(reference, streamed).errors == word_errors(reference, offline).errors


def test_finals_are_never_revised(whisper: WhisperEngine):
    """Every final is reported once; later updates only add finals with larger ids."""
    audio = decode_audio(SAMPLES / "urology_asthma.wav")
    stream = WhisperStream(whisper, min_new_s=1.0)
    seen: dict[int, str] = {}
    for at in range(0, len(audio), RATE // 2):
        stream.feed(audio[at : at + RATE // 2])
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


def _loop(offset: float, seconds: float) -> list[Word]:
    phrase = ["weak", "urinary", "stream", "and"]
    return [
        Word(" " + phrase[i % 4], round(offset + i * 0.3, 3), round(offset + i * 0.3 + 0.25, 3))
        for i in range(int(seconds / 0.3))
    ]


def _said(offset: float, seconds: float) -> list[Word]:
    """Distinct words, one per 0.5 s of the window, named by their absolute time: what a sane pass returns."""
    first = int(offset * 2 + 0.999)
    return [Word(f" w{k}", k / 2, k / 2 + 0.4) for k in range(first, int((offset + seconds) * 2) - 1)]


def _final_words(finals: list[Segment]) -> list[str]:
    return [w.word for s in finals for w in s.words]


def test_a_slow_machine_gets_late_finals_never_looped_ones(whisper: WhisperEngine, monkeypatch):
    """Under load passes are rare and cover long windows; there Whisper loops. The loop must not reach a final."""
    audio = decode_audio(SAMPLES / "urology_asthma.wav")
    stream = WhisperStream(whisper, beam_size=5)

    def run(audio_, offset, prompt, beam, finishing, whole):  # every pass over 4 s or more loops, as under load
        seconds = len(audio_) / RATE
        return _loop(offset, seconds) if seconds >= 4 else _said(offset, seconds)

    monkeypatch.setattr(stream.decoder, "_run", run)
    finals: list[Segment] = []
    for at in range(0, len(audio), 3 * RATE):  # 3 s of audio arrive between passes
        stream.feed(audio[at : at + 3 * RATE])
        if stream.needs_pass():
            finals += stream.step().finals
    finals += stream.flush().finals
    said = _final_words(finals)
    assert said and loop_start(said) is None  # at most two copies: what was said once, and the retry's
    assert said.count("urinary") <= 2 and stream.decoder.loops >= 1


def test_a_finishing_pass_that_stops_early_is_continued(whisper: WhisperEngine):
    """Whisper sometimes ends a window seconds before the speech does; the rest is decoded on its own."""
    calls = []

    class StopsEarly:
        def decode(self, audio, offset, **kwargs):
            seconds = len(audio) / RATE
            calls.append((round(offset, 2), round(seconds, 2), kwargs["finishing"]))
            if kwargs["finishing"] and len(calls) == 1:
                return _said(offset, seconds * 0.4)
            return _said(offset, seconds)

    audio = decode_audio(SAMPLES / "urology_asthma.wav")
    stream = WhisperStream(whisper, decoder=StopsEarly())  # type: ignore[arg-type]
    stream.feed(audio)
    finals = stream.flush().finals
    said = _final_words(finals)
    assert len(calls) == 2 and calls[1][2] is True and calls[1][0] == 3.1  # from the pre-roll before the last word end
    assert said == sorted(set(said), key=said.index)  # nothing twice
    assert finals[-1].end >= len(audio) / RATE - 1.5  # the end of the dictation is in the finals


def test_a_finishing_pass_beside_a_running_partial_makes_the_partial_stale(whisper: WhisperEngine):
    """With two workers the final does not wait for the partial over the same speech; the partial then shows nothing."""
    partial_started, release_partial = threading.Event(), threading.Event()

    class HeldPartials(WindowDecoder):
        def decode(self, audio, offset, **kwargs):
            if not kwargs.get("finishing"):
                partial_started.set()
                assert release_partial.wait(30)
            return super().decode(audio, offset, **kwargs)

    stream = WhisperStream(whisper, decoder=HeldPartials(whisper))
    audio = decode_audio(SAMPLES / "thyroid_depression.wav")[: 5 * RATE]
    for at in range(0, len(audio), RATE // 10):
        stream.feed(audio[at : at + RATE // 10])
    assert stream.needs_pass()
    results: list[StreamUpdate] = []
    partial = threading.Thread(target=lambda: results.append(stream.step()))
    partial.start()
    assert partial_started.wait(30)
    stream.end_input()
    final = stream.step()  # runs now, beside the held partial
    release_partial.set()
    partial.join(30)

    assert stream.finished and final.finals
    text = " ".join(s.text for s in final.finals)
    assert text.startswith("Tired") and "75 micrograms" in text  # the first 5 s of the dictation, once
    stale = results[0]
    assert stale.finals == [] and stale.partial == "" and stale.partial_start is None
    assert stream.step().finals == []  # nothing is left to finalise twice


def test_a_partial_over_a_long_window_decodes_only_its_tail(whisper: WhisperEngine):
    """Past `full_window_s` a partial keeps the words it showed and decodes the last seconds; the final decodes all."""
    audio = decode_audio(SAMPLES / "cardiology_followup.wav")  # 14 s without a pause long enough to end it
    stream = WhisperStream(whisper, min_new_s=1.0)
    calls: list[tuple[float, float, bool]] = []  # (window seconds, decoded seconds, finishing)
    decode = stream.decoder.decode

    def spy(audio_, offset, **kwargs):
        calls.append((stream.time - stream._window_start / RATE, len(audio_) / RATE, kwargs["finishing"]))
        return decode(audio_, offset, **kwargs)

    stream.decoder.decode = spy
    tails: list[tuple[float, StreamUpdate]] = []  # (decoded seconds, update) of passes over a long window
    finals: list[Segment] = []
    previous = ""
    for at in range(0, len(audio), RATE // 10):
        stream.feed(audio[at : at + RATE // 10])
        if stream.needs_pass():
            update = stream.step()
            window, decoded, _ = calls[-1]
            if window > stream.full_window / RATE and decoded < window - 0.5:  # kept words, decoded the rest
                tails.append((decoded, update))
                assert not update.finals  # a partial is shown only
                assert update.partial.split()[:2] == previous.split()[:2]  # the start stays on screen
            previous, finals = update.partial, finals + update.finals
    last = stream.flush().finals

    # the tail, plus the pause before it and the pre-roll: a shown word may end well before the tail begins
    assert len(tails) >= 3 and all(decoded < stream.tail_window / RATE + 2.5 for decoded, _ in tails)
    assert [decoded for _, decoded, finishing in calls if finishing][0] >= last[-1].end - last[0].start
    reference = (SAMPLES / "cardiology_followup.txt").read_text()
    streamed = word_errors(reference, " ".join(s.text for s in finals + last)).wer
    assert streamed <= word_errors(reference, whisper.transcribe(audio).text).wer + 0.1


def test_which_shown_words_a_partial_over_a_long_window_keeps(whisper: WhisperEngine):
    """Past `full_window_s` the shown words before the last `tail_window_s` (under load: `loaded_tail_window_s`)."""
    stream = WhisperStream(whisper)
    stream._tail = [Word(" one", 7.5, 8.0), Word(" two", 8.0, 9.5)]
    assert stream._kept_words(0, 10 * RATE) == []  # no shown word ends 5 s before the end: nothing to keep
    stream._tail = [Word(" one", 0.5, 1.0), Word(" two", 8.0, 9.5)]
    assert [w.word for w in stream._kept_words(0, 10 * RATE)] == [" one"]
    assert stream._kept_words(0, 26 * RATE) == []  # past max_utterance_s a whole pass makes words final
    stream._tail = [Word(" one", 0.5, 1.0), Word(" two", 1.0, 1.5), Word(" three", 2.0, 3.0)]
    assert stream._kept_words(0, 3 * RATE) == []  # a short window is decoded whole
    assert [w.word for w in stream._kept_words(0, 3 * RATE, loaded=True)] == [" one"]


def _stream_loaded(whisper: WhisperEngine, audio: np.ndarray, congested: bool) -> tuple[list[Segment], int]:
    """Stream `audio` with the scheduler's congestion fixed; the finals and the number of partial passes."""
    stream = WhisperStream(whisper)
    stream.congested = lambda: congested
    partial_passes, finals = 0, []
    for at in range(0, len(audio), RATE // 10):
        stream.feed(audio[at : at + RATE // 10])
        if stream.needs_pass():
            update = stream.step()
            partial_passes += not update.final_pass_audio_s
            if congested:  # a final only from a finishing pass, which says how much audio it decoded
                assert not update.finals or update.final_pass_audio_s > 1.0
            finals += update.finals
    last = stream.flush()
    assert not last.finals or last.final_pass_audio_s > 1.0
    return finals + last.finals, partial_passes


def test_under_load_finals_come_only_from_whole_utterance_passes(whisper: WhisperEngine):
    """With passes queueing (congested), partial passes are rarer and commit nothing: each final comes from the pass
    over the whole utterance at its end, as offline decodes a VAD chunk, so its accuracy is offline's."""
    streamed_errors = offline_errors = 0
    for name in ("urology_asthma", "cardiology_followup"):
        wav = SAMPLES / f"{name}.wav"
        audio = np.concatenate([decode_audio(wav), np.zeros(RATE, np.float32)])
        finals, loaded_passes = _stream_loaded(whisper, audio, congested=True)
        reference = wav.with_suffix(".txt").read_text()
        streamed_errors += word_errors(reference, " ".join(s.text for s in finals)).errors
        offline_errors += word_errors(reference, whisper.transcribe(audio).text).errors
    assert streamed_errors <= offline_errors + 2, (streamed_errors, offline_errors)
    _, quiet_passes = _stream_loaded(whisper, audio, congested=False)
    assert loaded_passes * 2 <= quiet_passes  # partials thin out under load


class _AlwaysSpeech:
    """An endpointer hearing one long utterance: no end of speech, as in a long turn of a conversation."""

    is_speech = True

    def feed(self, chunk):
        return []


def test_a_late_pass_never_gives_whisper_more_than_it_hears(whisper: WhisperEngine, monkeypatch):
    """Under load a pass may come after 40 s of one utterance; Whisper drops what is past 30 s of its input, so the
    pass decodes the first part, commits it, and later passes take the rest: every word once, none lost."""
    stream = WhisperStream(whisper, endpointer=_AlwaysSpeech())
    heard = []

    def run(audio_, offset, prompt, beam, finishing, whole):
        heard.append(len(audio_) / RATE)
        return _said(offset, len(audio_) / RATE)

    monkeypatch.setattr(stream.decoder, "_run", run)
    stream.feed(np.zeros(40 * RATE, np.float32))  # 40 s arrive before the first pass runs
    finals = list(stream.step().finals)
    assert finals and heard[0] <= 28.0  # the first part only: max_utterance_s + 2 s
    finals += stream.flush().finals
    assert max(heard) <= 28.0
    said = _final_words(finals)
    expected = [w.word.strip() for w in _said(0.0, 40.0)]
    assert said == expected[: len(said)] and len(said) >= len(expected) - 1  # in order, none twice, none dropped


@pytest.mark.parametrize("words_in_window", [30, 0])
def test_an_over_long_utterance_always_moves_on(whisper: WhisperEngine, monkeypatch, words_in_window):
    """A slow unpunctuated turn (fewer words than a segment holds) or a window Whisper finds nothing in: the forced
    pass past max_utterance_s must still make finals or move the window, else every later pass decodes the same
    audio again and the backlog grows until the reader stops (seen with audio arriving faster than real time)."""
    stream = WhisperStream(whisper, endpointer=_AlwaysSpeech())

    def run(audio_, offset, prompt, beam, finishing, whole):
        seconds = len(audio_) / RATE
        step = seconds / max(words_in_window, 1)
        starts = [offset + i * step for i in range(words_in_window)]
        return [Word(f" v{round(at * 10)}", round(at, 3), round(at + step * 0.8, 3)) for at in starts]

    monkeypatch.setattr(stream.decoder, "_run", run)
    stream.feed(np.zeros(60 * RATE, np.float32))  # a minute arrives before the passes catch up
    for _ in range(12):
        stream.step()
        if stream.buffered_seconds < 30:
            break
    assert stream.buffered_seconds < 30  # the window moved: the audio before it is dropped
    finals = stream.flush().finals
    assert stream.finished and (finals or not words_in_window)
