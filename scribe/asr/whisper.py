"""Whisper through faster-whisper (CTranslate2): the bundled offline default and the engine for conversations."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from scribe.asr import bundled_whisper
from scribe.asr.base import SAMPLE_RATE, ProgressCallback
from scribe.asr.record_terms import correct_to_record_terms
from scribe.asr.segmenting import segments_from_words
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.resources import render_template
from scribe.transcript import Transcript, Word, join_segment_texts


def hotword_prompt(context: PatientContext | None) -> str | None:
    """The records' vocabulary as a Whisper hotword prompt (rendered from templates/prompts)."""
    terms = context.hotwords() if context is not None else []
    if not terms:
        return None
    return render_template("prompts/asr_hotwords.txt.j2", terms=terms).strip() or None


def _cuda_available() -> bool:
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count() > 0
    except RuntimeError:
        return False


ENCODER_STEP_FRAMES = 500  # 5 s of 10 ms mel frames: encoder inputs come in a few fixed sizes
ENCODER_MAX_FRAMES = 3000  # Whisper's 30 s window


def encoder_frames_for(longest_chunk_s: float) -> int:
    """Mel frames to encode for a batch whose longest speech chunk lasts `longest_chunk_s`.

    Whisper pads every input to 30 s, so a 12 s dictation pays for 30 s of encoder. Encoding
    only the speech plus a second of padding, rounded up to 5 s steps, cuts the encoder cost
    for short audio (0.51 s -> 0.13 s for 15 s here) with the same text on our samples.
    """
    needed = int(longest_chunk_s * 100) + 100
    return min(ENCODER_MAX_FRAMES, -(-needed // ENCODER_STEP_FRAMES) * ENCODER_STEP_FRAMES)


def _trimmed_pipeline(model):
    from faster_whisper import BatchedInferencePipeline

    class TrimmedBatchedPipeline(BatchedInferencePipeline):
        """faster-whisper's batched pipeline, encoding only as many frames as the batch's speech needs."""

        def forward(self, features, tokenizer, chunks_metadata, options):
            frames = encoder_frames_for(max(c["duration"] for c in chunks_metadata))
            return super().forward(np.ascontiguousarray(features[..., :frames]), tokenizer, chunks_metadata, options)

    return TrimmedBatchedPipeline(model)


class WhisperEngine:
    """Batched faster-whisper: VAD cuts speech into chunks decoded together, about half the CPU of sequential."""

    name = "whisper"

    def __init__(self, model, model_version: str, beam_size: int = 5, batch_size: int = 8) -> None:
        self._model = model
        self._pipeline = _trimmed_pipeline(model)
        self.model = model_version
        self.beam_size = beam_size
        self.batch_size = batch_size

    @classmethod
    def load(cls, source: str | None, settings: Settings) -> WhisperEngine:
        """Load the bundled model (source None), a local CTranslate2 directory, or a cached hub model.

        Never downloads: a name that is not in the local Hugging Face cache is an error.
        """
        from faster_whisper import WhisperModel

        if source is None:
            path, version = str(bundled_whisper.ensure_bundled(settings.models_dir)), bundled_whisper.MODEL_VERSION
        elif Path(source).expanduser().is_dir():
            path, version = str(Path(source).expanduser()), f"faster-whisper:{Path(source).name}"
        else:
            path, version = source, f"faster-whisper:{source}"
        use_cuda = settings.asr_device == "cuda" or (settings.asr_device == "auto" and _cuda_available())
        try:
            model = WhisperModel(
                path,
                device="cuda" if use_cuda else "cpu",
                compute_type="float16" if use_cuda else "int8",
                cpu_threads=settings.asr_threads or os.cpu_count() or 1,
                local_files_only=True,
            )
        except Exception as exc:  # ctranslate2/huggingface raise many kinds; all mean "cannot load"
            raise EngineUnavailableError(
                f"cannot load Whisper model {source!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                "Give a faster-whisper model directory, or a model name already in the local Hugging Face cache."
            ) from None
        return cls(model, version, beam_size=settings.whisper_beam_size)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        context: PatientContext | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        started = time.perf_counter()
        duration = len(audio) / SAMPLE_RATE
        words: list[Word] = []
        if duration > 0:
            chunks, _info = self._pipeline.transcribe(
                audio,
                language="en",
                beam_size=self.beam_size,
                batch_size=self.batch_size,
                word_timestamps=True,
                hotwords=hotword_prompt(context),
            )
            for chunk in chunks:
                words.extend(Word(w.word, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
                             for w in chunk.words or [])
                if progress:
                    progress(min(chunk.end, duration))
        if context is not None:
            words = correct_to_record_terms(words, context.hotwords())
        segments = segments_from_words(words)
        return Transcript(
            text=join_segment_texts(segments),
            language="en",
            engine=self.name,
            model=self.model,
            duration_s=round(duration, 3),
            processing_s=round(time.perf_counter() - started, 3),
            segments=segments,
        )
