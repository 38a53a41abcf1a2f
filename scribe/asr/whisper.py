"""Whisper through faster-whisper (CTranslate2): the bundled offline default and the engine for conversations."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from scribe.asr import bundled_whisper
from scribe.asr.base import SAMPLE_RATE, ProgressCallback
from scribe.asr.segmenting import segments_from_words
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.resources import render_template
from scribe.transcript import Transcript, Word, join_segment_texts


def hotword_prompt(context: PatientContext | None) -> str | None:
    """The records' vocabulary as a Whisper hotword prompt (rendered from templates/prompts)."""
    if context is None or not context.hotwords():
        return None
    text = render_template(
        "prompts/asr_hotwords.txt.j2",
        medications=_unique(m.name for m in context.medications),
        problems=_unique(p.name for p in context.problems),
        allergies=_unique(a.substance for a in context.allergies),
    ).strip()
    return text or None


def _unique(names) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        if name and name.strip().lower() not in seen:
            seen[name.strip().lower()] = name.strip()
    return list(seen.values())


def _cuda_available() -> bool:
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count() > 0
    except RuntimeError:
        return False


class WhisperEngine:
    """Batched faster-whisper: VAD cuts speech into chunks decoded together, about half the CPU of sequential."""

    name = "whisper"

    def __init__(self, model, model_version: str, beam_size: int = 5, batch_size: int = 8) -> None:
        from faster_whisper import BatchedInferencePipeline

        self._model = model
        self._pipeline = BatchedInferencePipeline(model)
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
