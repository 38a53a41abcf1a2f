"""WindowDecoder: the engine's own pipeline over stream windows; loops cut, finishing passes retried untrimmed."""

import numpy as np
import pytest

from scribe.asr import EngineChoice, load_engine
from scribe.asr.whisper import WhisperEngine
from scribe.audio import decode_audio
from scribe.config import Settings
from scribe.streaming.window_decoder import WindowDecoder
from scribe.transcript import Word
from scribe.wer import word_errors
from tests.conftest import SAMPLES

RATE = 16_000


@pytest.fixture
def whisper(settings: Settings) -> WhisperEngine:
    return load_engine(EngineChoice("whisper", None, "test"), settings)  # type: ignore[return-value]


def loop_words(offset: float, seconds: float) -> list[Word]:
    phrase = " weak urinary stream and".split(" ")[1:]
    count = int(seconds / 0.3)
    return [Word(" " + phrase[i % 4], offset + i * 0.3, offset + i * 0.3 + 0.25) for i in range(count)]


def clean_words(offset: float) -> list[Word]:
    return [
        Word(" " + w, offset + i * 0.5, offset + i * 0.5 + 0.4) for i, w in enumerate("weak urinary stream".split())
    ]


def test_window_words_are_absolute_and_close_to_offline(whisper: WhisperEngine):
    audio = decode_audio(SAMPLES / "diabetes_visit.wav")
    reference = (SAMPLES / "diabetes_visit.txt").read_text()
    decoder = WindowDecoder(whisper)
    words = decoder.decode(audio[: 5 * RATE], 100.0, beam_size=1)
    assert words and all(100.0 <= w.start <= w.end <= 105.0 for w in words)
    whole = decoder.decode(audio, 0.0, beam_size=5, finishing=True)
    assert word_errors(reference, "".join(w.word for w in whole)).wer < 0.6
    assert decoder.decode(audio[:800], 0.0) == []  # 50 ms: no pass at all


def test_a_partial_pass_that_loops_is_cut(whisper: WhisperEngine, monkeypatch):
    decoder = WindowDecoder(whisper)
    calls = []
    monkeypatch.setattr(
        decoder,
        "_run",
        lambda audio, offset, prompt, beam, finishing, whole: (
            calls.append(whole) or loop_words(offset, len(audio) / RATE)
        ),
    )
    words = decoder.decode(np.zeros(9 * RATE, np.float32), 2.0, beam_size=1)
    assert [w.word.strip() for w in words] == ["weak", "urinary", "stream", "and"]
    assert calls == [False] and decoder.loops == 1  # no retry for a partial


def test_a_finishing_pass_that_loops_is_retried_untrimmed_and_unprompted(whisper: WhisperEngine, monkeypatch):
    decoder = WindowDecoder(whisper)
    calls = []

    def run(audio, offset, prompt, beam, finishing, whole):
        calls.append((prompt, whole))
        return clean_words(offset) if whole else loop_words(offset, len(audio) / RATE)

    monkeypatch.setattr(decoder, "_run", run)
    words = decoder.decode(np.zeros(9 * RATE, np.float32), 0.0, prompt="Earlier text.", beam_size=5, finishing=True)
    assert [w.word.strip() for w in words] == ["weak", "urinary", "stream"]
    assert calls == [("Earlier text.", False), ("", True)] and decoder.loops == 0


def test_a_finishing_pass_that_loops_twice_keeps_what_was_said_once(whisper: WhisperEngine, monkeypatch):
    decoder = WindowDecoder(whisper)
    monkeypatch.setattr(decoder, "_run", lambda audio, offset, prompt, beam, finishing, whole: loop_words(offset, 9.0))
    words = decoder.decode(np.zeros(9 * RATE, np.float32), 0.0, beam_size=5, finishing=True)
    assert [w.word.strip() for w in words] == ["weak", "urinary", "stream", "and"] and decoder.loops == 1


def test_the_token_budget_leaves_room_for_long_prompts(whisper: WhisperEngine):
    """faster-whisper refuses prompt + max_new_tokens over 448; long hotwords and prompt must still decode."""
    audio = decode_audio(SAMPLES / "urology_asthma.wav")
    decoder = WindowDecoder(whisper, hotwords=" ".join(["tamsulosin montelukast albuterol"] * 60))
    words = decoder.decode(audio, 0.0, prompt="Weak urinary stream. " * 40, beam_size=1)
    assert isinstance(words, list)
