"""The Whisper engine decodes a failed chunk again without its prompt, bounds every decode, and cuts what still loops."""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline

from scribe.asr import whisper
from scribe.asr.whisper import WhisperEngine, encoder_frames_for, token_budget

TERMS = ["cetirizine", "fluticasone", "loratadine", "montelukast"]


@dataclass
class Options:
    hotwords: str | None
    without_timestamps: bool = True
    max_new_tokens: int | None = None


class FakeModel:
    def get_prompt(self, tokenizer, previous, without_timestamps=True, hotwords=None):
        return [0] * (4 + (len(hotwords.split()) if hotwords else 0))


def chunk(text: str, tokens: int = 10) -> list[dict]:
    return [{"tokens": list(range(tokens)), "words": [{"word": f" {w}"} for w in text.split()]}]


def test_only_the_failed_chunk_is_decoded_again_without_the_prompt(monkeypatch):
    calls = []

    def forward(self, features, tokenizer, chunks_metadata, options):
        calls.append((features.shape, [c["duration"] for c in chunks_metadata], options.hotwords, options.max_new_tokens))
        if options.hotwords is None:
            return [chunk("Cetirizine 10 milligrams daily.")]
        return [chunk("Seasonal allergies."), chunk("fluticasone, loratadine, montelukast")]

    monkeypatch.setattr(BatchedInferencePipeline, "forward", forward)
    pipeline = whisper._guarded_pipeline_class()(FakeModel(), TERMS)
    features = np.zeros((2, 80, 3000), dtype=np.float32)
    out = pipeline.forward(features, None, [{"duration": 3.0}, {"duration": 8.0}], Options(", ".join(TERMS)))
    assert [w["word"] for w in out[1][0]["words"]] == [" Cetirizine", " 10", " milligrams", " daily."]
    assert out[0] == chunk("Seasonal allergies.")
    budget = token_budget(8.0, 4 + len(TERMS))
    assert calls == [((2, 80, encoder_frames_for(8.0)), [3.0, 8.0], ", ".join(TERMS), budget),
                     ((1, 80, encoder_frames_for(8.0)), [8.0], None, budget)]
    assert pipeline.redecoded == 1


def test_a_decode_that_uses_its_whole_budget_is_redone_and_good_chunks_are_kept(monkeypatch):
    calls = []

    def forward(self, features, tokenizer, chunks_metadata, options):
        calls.append(options.hotwords)
        return [chunk("fine words here", tokens=options.max_new_tokens if options.hotwords else 12)]

    monkeypatch.setattr(BatchedInferencePipeline, "forward", forward)
    pipeline = whisper._guarded_pipeline_class()(FakeModel(), TERMS)
    pipeline.forward(np.zeros((1, 80, 3000), dtype=np.float32), None, [{"duration": 5.0}], Options("cetirizine."))
    assert calls == ["cetirizine.", None]

    calls.clear()
    plain = whisper._guarded_pipeline_class()(FakeModel(), [])
    plain.forward(np.zeros((1, 80, 3000), dtype=np.float32), None, [{"duration": 5.0}], Options(None))
    assert calls == [None]  # nothing to fall back to without a prompt


@pytest.mark.parametrize(("seconds", "prompt", "budget"), [(1.0, 4, 36), (12.0, 50, 168), (30.0, 4, 384), (30.0, 100, 348)])
def test_token_budget_grows_with_the_chunk_and_fits_whispers_context(seconds, prompt, budget):
    assert token_budget(seconds, prompt) == budget
    assert token_budget(seconds, prompt) + prompt <= 448


def test_the_engine_cuts_a_loop_that_survived_the_fallback(monkeypatch):
    looping = " Weak urinary stream, and weak urinary stream, and weak urinary stream, and".split(" ")[1:]
    timed = [SimpleNamespace(word=f" {w}", start=i * 0.3, end=i * 0.3 + 0.25, probability=0.9)
             for i, w in enumerate(looping)]

    calls = []

    class FakePipeline:
        def __init__(self, model, terms):
            calls.append(terms)

        def transcribe(self, audio, **kwargs):
            calls.append(kwargs)
            return iter([SimpleNamespace(start=0.0, end=4.0, words=timed)]), None

    monkeypatch.setattr(whisper, "_guarded_pipeline_class", lambda: FakePipeline)
    engine = WhisperEngine(object(), "fake")
    transcript = engine.transcribe(np.zeros(16000 * 4, dtype=np.float32))
    assert transcript.text == "Weak urinary stream, and"
    assert calls[0] == [] and calls[1]["no_repeat_ngram_size"] == whisper.NO_REPEAT_NGRAM
