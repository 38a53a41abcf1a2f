"""The bundled Whisper engine end to end on the committed sample dictations."""

from pathlib import Path

import numpy as np
import pytest

from scribe.asr import EngineChoice, load_engine
from scribe.asr.whisper import WhisperEngine, hotword_prompt
from scribe.audio import decode_audio
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import load_records
from scribe.wer import word_errors
from tests.conftest import SAMPLES

SAMPLE_WAVS = sorted(SAMPLES.glob("*.wav"))


@pytest.fixture
def whisper(settings: Settings) -> WhisperEngine:
    return load_engine(EngineChoice("whisper", None, "test"), settings)  # type: ignore[return-value]


def test_transcribes_a_dictation_with_times(whisper: WhisperEngine):
    wav = SAMPLES / "cardiology_followup.wav"
    audio = decode_audio(wav)
    progress: list[float] = []
    context = load_records(wav.with_name(wav.stem + ".bundle.json"))
    transcript = whisper.transcribe(audio, context=context, progress=progress.append)
    assert transcript.engine == "whisper" and "sha256:905e5bf8336b" in transcript.model
    assert transcript.duration_s == pytest.approx(len(audio) / 16000, abs=0.01)
    assert word_errors(wav.with_suffix(".txt").read_text(), transcript.text).wer < 0.3
    assert progress and progress[-1] <= transcript.duration_s + 0.01
    previous_end = 0.0
    for index, segment in enumerate(transcript.segments):
        assert segment.id == index and segment.words
        assert segment.text == segment.text.strip() and segment.text.startswith(segment.words[0].word)
        for word in segment.words:
            assert word.word == word.word.strip() and word.word
            assert type(word.start) is float and type(word.end) is float
            assert previous_end - 0.05 <= word.start <= word.end <= transcript.duration_s + 0.05
            previous_end = word.end
    assert transcript.text == " ".join(s.text for s in transcript.segments)


def test_silence_gives_an_empty_transcript(whisper: WhisperEngine):
    transcript = whisper.transcribe(np.zeros(16000 * 3, dtype=np.float32))
    assert transcript.text == "" and transcript.segments == [] and transcript.duration_s == 3.0


def test_empty_audio(whisper: WhisperEngine):
    assert whisper.transcribe(np.zeros(0, dtype=np.float32)).segments == []


def test_hotword_prompt_lists_record_vocabulary():
    bundle = sorted(SAMPLES.glob("*.bundle.json"))[0]
    context = load_records(bundle)
    prompt = hotword_prompt(context)
    assert prompt is not None
    for medication in context.medications:
        assert medication.name in prompt
    assert hotword_prompt(None) is None


def test_records_bias_recognition_towards_their_drug_names(whisper: WhisperEngine):
    """Across the samples, drug names come out spelled right at least as often with records as without."""
    from scribe.wer import term_recall

    plain = biased = spoken = 0
    for wav in SAMPLE_WAVS:
        context = load_records(wav.with_name(wav.stem + ".bundle.json"))
        reference = wav.with_suffix(".txt").read_text()
        drugs = [m.name for m in context.medications]
        audio = decode_audio(wav)
        found_plain, n = term_recall(reference, whisper.transcribe(audio).text, drugs)
        found_biased, _ = term_recall(reference, whisper.transcribe(audio, context=context).text, drugs)
        plain, biased, spoken = plain + found_plain, biased + found_biased, spoken + n
    assert spoken >= 10
    assert biased >= plain and biased / spoken >= 0.8


def test_missing_model_directory_is_unavailable(settings: Settings, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineUnavailableError, match="cannot load Whisper model"):
        WhisperEngine.load(str(tmp_path / "empty"), settings)


def test_uncached_model_name_is_unavailable_without_download(settings: Settings):
    with pytest.raises(EngineUnavailableError, match="cannot load Whisper model 'large-v3'"):
        WhisperEngine.load("large-v3", settings)


@pytest.mark.parametrize(
    ("seconds", "frames"), [(0.5, 500), (3.9, 800), (4.1, 900), (11.5, 1600), (14.4, 1900), (25.5, 3000), (30.0, 3000)]
)
def test_encoder_input_covers_the_audio_plus_padding(seconds, frames):
    from scribe.asr.whisper import DecodingOptions

    assert DecodingOptions().encoder_frames(seconds) == frames
    assert frames >= min(3000, seconds * 100 + 400)


def test_cpu_load_keeps_numpy_blas_on_one_thread(whisper: WhisperEngine):
    """OpenBLAS threads spin after each feature extraction and would take a core from the decoder."""
    from threadpoolctl import threadpool_info

    openblas = [lib for lib in threadpool_info() if lib["internal_api"] == "openblas"]
    assert openblas and all(lib["num_threads"] == 1 for lib in openblas)


@pytest.mark.slow  # loads the bundled Whisper
def test_service_streams_on_one_thread_per_pass_and_a_worker_per_core(settings: Settings):
    """A streaming pass decodes token by token, fastest on one thread; the other cores serve other passes."""
    from scribe.api.asr_state import AsrState
    from scribe.asr.cores import usable_cores

    state = AsrState()
    state.load(settings)
    engine = state.engine_for("encounter")
    assert state.ready and engine.name == "whisper"
    assert engine.workers == usable_cores()
    assert state.scheduler_for(engine).workers == engine.workers


@pytest.mark.slow  # loads the bundled Whisper twice
def test_an_offline_command_uses_every_core_for_its_one_call(settings: Settings):
    """One `scribe transcribe` at a time: all cores on that call (the service runs a call per core instead)."""
    from scribe.asr.cores import usable_cores

    offline = load_engine(EngineChoice("whisper", None, "test"), settings)
    serving = load_engine(EngineChoice("whisper", None, "test"), settings, serving=True)
    cores = usable_cores()
    assert (offline.threads, offline.workers) == (cores, 1)  # type: ignore[attr-defined]
    assert (serving.threads, serving.workers) == (1, cores)  # type: ignore[attr-defined]


def test_each_chunk_is_prompted_with_the_text_its_lane_decoded_before(whisper: WhisperEngine, monkeypatch):
    """Context across chunks: from the second step on, each chunk's prompt is the text its lane decoded just before."""
    from scribe.asr import whisper as module

    audio = np.concatenate([decode_audio(wav) for wav in SAMPLE_WAVS[:3]] * 2)
    prompts: list[list[list[int]]] = []
    pipeline = module._pipeline_class()

    class Recording(pipeline):  # type: ignore[misc, valid-type]
        def generate_segment_batched(self, features, tokenizer, options):
            prompts.append([list(p) for p in self.previous or [[]] * features.shape[0]])
            return super().generate_segment_batched(features, tokenizer, options)

    monkeypatch.setattr(module, "_pipeline_class", lambda: Recording)
    monkeypatch.setattr(module, "respell", lambda words, terms: words)  # the text exactly as decoded
    text = whisper.with_options(batch_size=2).transcribe(audio).text
    assert len(prompts) >= 2 and all(p == [] for p in prompts[0]) and all(prompts[1])
    for previous in prompts[1]:
        assert whisper._model.hf_tokenizer.decode(previous).strip() in text

    prompts.clear()
    whisper.with_options(batch_size=2, previous_text=False).transcribe(audio)
    assert prompts and all(p == [] for batch in prompts for p in batch)
