"""The Whisper pipeline decodes a failed chunk again as Whisper was trained, bounds each decode, cuts what loops."""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline

from scribe.asr import whisper
from scribe.asr.whisper import DecodingOptions, WhisperEngine

OPTIONS = DecodingOptions()

TERMS = ["cetirizine", "fluticasone", "loratadine", "montelukast"]


@dataclass
class Options:
    hotwords: str | None
    without_timestamps: bool = True
    max_new_tokens: int | None = None


class FakeModel:
    """Stands in for faster-whisper's model: the parent pipeline's forward is faked."""


def chunk(text: str, tokens: int = 10) -> list[dict]:
    return [{"tokens": list(range(tokens)), "words": [{"word": f" {w}"} for w in text.split()]}]


def test_only_the_failed_chunk_is_decoded_again_without_the_prompt_on_the_whole_encoder_input(monkeypatch):
    calls = []

    def forward(self, features, tokenizer, chunks_metadata, options):
        calls.append(
            (features.shape, [c["duration"] for c in chunks_metadata], options.hotwords, options.max_new_tokens)
        )
        if options.hotwords is None:
            return [chunk("Cetirizine 10 milligrams daily.")]
        return [chunk("Seasonal allergies."), chunk("fluticasone, loratadine, montelukast")]

    monkeypatch.setattr(BatchedInferencePipeline, "forward", forward)
    pipeline = whisper._pipeline_class()(FakeModel(), OPTIONS, TERMS)
    features = np.zeros((2, 80, 3000), dtype=np.float32)
    out = pipeline.forward(features, None, [{"duration": 3.0}, {"duration": 8.0}], Options(", ".join(TERMS)))
    assert [w["word"] for w in out[1][0]["words"]] == [" Cetirizine", " 10", " milligrams", " daily."]
    assert out[0] == chunk("Seasonal allergies.")
    budget = OPTIONS.token_budget(8.0)
    assert calls == [
        ((2, 80, OPTIONS.encoder_frames(8.0)), [3.0, 8.0], ", ".join(TERMS), budget),
        ((1, 80, 3000), [8.0], None, budget),
    ]
    assert pipeline.redecoded == 1


def test_a_decode_that_uses_its_whole_budget_is_redone_and_good_chunks_are_kept(monkeypatch):
    calls = []

    def forward(self, features, tokenizer, chunks_metadata, options):
        calls.append(options.hotwords)
        return [chunk("fine words here", tokens=options.max_new_tokens if options.hotwords else 12)]

    monkeypatch.setattr(BatchedInferencePipeline, "forward", forward)
    pipeline = whisper._pipeline_class()(FakeModel(), OPTIONS, TERMS)
    pipeline.forward(np.zeros((1, 80, 3000), dtype=np.float32), None, [{"duration": 5.0}], Options("cetirizine."))
    assert calls == ["cetirizine.", None]

    calls.clear()
    unguarded = whisper._pipeline_class()(FakeModel(), OPTIONS, TERMS, guard=False)  # a streaming partial
    unguarded.forward(np.zeros((1, 80, 3000), dtype=np.float32), None, [{"duration": 5.0}], Options("cetirizine."))
    assert calls == ["cetirizine."]

    calls.clear()
    plain = whisper._pipeline_class()(FakeModel(), OPTIONS, [], frames=3000)
    plain.forward(np.zeros((1, 80, 3000), dtype=np.float32), None, [{"duration": 5.0}], Options(None))
    assert calls == [None]  # already as Whisper was trained: nothing to fall back to


@pytest.mark.parametrize(
    ("seconds", "prompt", "budget"), [(1.0, 4, 36), (12.0, 50, 168), (30.0, 4, 384), (30.0, 100, 348)]
)
def test_token_budget_grows_with_the_chunk_and_fits_whispers_context(seconds, prompt, budget):
    assert OPTIONS.token_budget(seconds, prompt) == budget
    assert OPTIONS.token_budget(seconds, prompt) + prompt <= 448


def test_the_engine_cuts_a_loop_that_survived_the_fallback(monkeypatch):
    looping = " Weak urinary stream, and weak urinary stream, and weak urinary stream, and".split(" ")[1:]
    timed = [
        SimpleNamespace(word=f" {w}", start=i * 0.3, end=i * 0.3 + 0.25, probability=0.9) for i, w in enumerate(looping)
    ]

    calls = []

    class FakePipeline:
        def __init__(self, model, decoding, terms, **kwargs):
            calls.append(terms)

        def transcribe(self, audio, **kwargs):
            calls.append(kwargs)
            return iter([SimpleNamespace(start=0.0, end=4.0, words=timed)]), None

    monkeypatch.setattr(whisper, "_pipeline_class", lambda: FakePipeline)
    engine = WhisperEngine(object(), "fake")
    transcript = engine.transcribe(np.zeros(16000 * 4, dtype=np.float32))
    assert transcript.text == "Weak urinary stream, and"
    assert calls[0] == [] and calls[1]["no_repeat_ngram_size"] == OPTIONS.no_repeat_ngram_size
