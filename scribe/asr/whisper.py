"""Whisper through faster-whisper (CTranslate2): the bundled offline default and the engine for conversations."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np

from scribe.asr import bundled_whisper
from scribe.asr.base import SAMPLE_RATE, ProgressCallback
from scribe.asr.hallucinations import failure, loop_start
from scribe.asr.record_terms import correct_to_record_terms
from scribe.asr.segmenting import segments_from_words
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.resources import render_template
from scribe.transcript import Transcript, Word, join_segment_texts

log = logging.getLogger("scribe.asr")


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


# Threads per Whisper call, measured here with numpy's BLAS on one thread (see _single_threaded_blas): base's
# matrices are too small to gain from a second thread. One decodes a streaming pass at 8 ms a token against
# 16 ms on two, and transcribes the samples at RTF 0.06 to 0.07 against 0.09; further cores serve further
# calls (sessions) at once.
WHISPER_CALL_THREADS = 1
ENCODER_STEP_FRAMES = 250  # 2.5 s of 10 ms mel frames: encoder inputs come in a dozen fixed sizes
ENCODER_MAX_FRAMES = 3000  # Whisper's 30 s window


def encoder_frames_for(longest_chunk_s: float) -> int:
    """Mel frames to encode for a batch whose longest speech chunk lasts `longest_chunk_s`.

    Whisper pads every input to 30 s, so a 12 s dictation pays for 30 s of encoder. Encoding
    only the speech plus a second of padding, rounded up to 2.5 s steps, cuts the encoder cost
    for short audio (0.51 s -> 0.13 s for 15 s here) with the same WER on 25 short dictations
    as 5 s steps (finer 1 s steps made Whisper loop more often).
    """
    needed = int(longest_chunk_s * 100) + 100
    return min(ENCODER_MAX_FRAMES, -(-needed // ENCODER_STEP_FRAMES) * ENCODER_STEP_FRAMES)


NO_REPEAT_NGRAM = 10  # tokens: no phrase that long comes twice, so a loop cannot start; speech rarely repeats one
TOKENS_PER_SECOND = 12  # token budget per second of chunk: twice the fastest Whisper wrote here (5.7/s)
MIN_TOKENS = 24
MAX_LENGTH = 448  # Whisper's token context: prompt + output


def token_budget(longest_chunk_s: float, prompt_tokens: int) -> int:
    """Most tokens a batch may decode: a loop stops there instead of at Whisper's 448-token context."""
    return max(1, min(MAX_LENGTH - prompt_tokens, MIN_TOKENS + math.ceil(TOKENS_PER_SECOND * longest_chunk_s)))


@cache
def _guarded_pipeline_class():
    from faster_whisper import BatchedInferencePipeline

    class GuardedPipeline(BatchedInferencePipeline):
        """faster-whisper's batched pipeline, encoding only the frames a batch needs and decoding twice when it must.

        A chunk that loops, runs out of tokens or echoes the hotword prompt (`hallucinations`) is
        decoded again without the prompt; the records' spellings then come back through
        `correct_to_record_terms`. Built per call: it holds that call's hotword terms.
        """

        def __init__(self, model, terms: list[str]) -> None:
            super().__init__(model)
            self.terms = terms
            self.redecoded = 0

        def forward(self, features, tokenizer, chunks_metadata, options):
            longest = max(c["duration"] for c in chunks_metadata)
            features = np.ascontiguousarray(features[..., :encoder_frames_for(longest)])
            prompt = self.model.get_prompt(tokenizer, [], without_timestamps=options.without_timestamps,
                                           hotwords=options.hotwords)
            options = replace(options, max_new_tokens=token_budget(longest, len(prompt)))
            last_speech = self.last_speech_timestamp
            outputs = super().forward(features, tokenizer, chunks_metadata, options)
            if not options.hotwords:
                return outputs
            failures = [self._failure(chunk, options.max_new_tokens) for chunk in outputs]
            redo = [i for i, why in enumerate(failures) if why]
            if redo:
                log.warning("Whisper %s; %d of %d chunks decoded again without the hotword prompt",
                            failures[redo[0]], len(redo), len(outputs))
                self.redecoded += len(redo)
                self.last_speech_timestamp = last_speech
                again = super().forward(np.ascontiguousarray(features[redo]), tokenizer,
                                        [chunks_metadata[i] for i in redo], replace(options, hotwords=None))
                for i, chunk in zip(redo, again):
                    outputs[i] = chunk
            return outputs

        def _failure(self, chunk: list[dict], budget: int) -> str | None:
            words = [w["word"] for segment in chunk for w in segment.get("words") or []]
            tokens = sum(len(segment["tokens"]) for segment in chunk)
            return failure(words, self.terms, out_of_tokens=tokens >= budget)

    return GuardedPipeline


def _single_threaded_blas() -> None:
    """Keep numpy's OpenBLAS on one thread: its idle threads spin after every call and take a core from the decoder.

    faster-whisper's feature extractor makes one small matrix product per call; the spinning
    that follows cost a streaming server 7.7 s of CPU in 30 s at one session on two cores,
    and the end-of-speech latency with it. Only OpenBLAS is limited (torch brings its own).
    """
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


class WhisperEngine:
    """Batched faster-whisper: VAD cuts speech into chunks decoded together, about half the CPU of sequential."""

    name = "whisper"

    def __init__(self, model, model_version: str, beam_size: int = 5, batch_size: int = 8, workers: int = 1) -> None:
        self._model = model
        self.model = model_version
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.workers = workers  # calls that may run at once, each on its own threads

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
        cores = os.cpu_count() or 1
        threads = settings.asr_threads or min(cores, WHISPER_CALL_THREADS)
        workers = 1 if use_cuda else max(1, cores // threads)
        if not use_cuda:
            _single_threaded_blas()
        try:
            model = WhisperModel(
                path,
                device="cuda" if use_cuda else "cpu",
                compute_type="float16" if use_cuda else "int8",
                cpu_threads=threads,
                num_workers=workers,
                local_files_only=True,
            )
        except Exception as exc:  # ctranslate2/huggingface raise many kinds; all mean "cannot load"
            raise EngineUnavailableError(
                f"cannot load Whisper model {source!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                "Give a faster-whisper model directory, or a model name already in the local Hugging Face cache."
            ) from None
        return cls(model, version, beam_size=settings.whisper_beam_size, workers=workers)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        context: PatientContext | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        started = time.perf_counter()
        duration = len(audio) / SAMPLE_RATE
        terms = context.hotwords() if context is not None else []
        words: list[Word] = []
        if duration > 0:
            pipeline = _guarded_pipeline_class()(self._model, terms)
            chunks, _info = pipeline.transcribe(
                audio,
                language="en",
                beam_size=self.beam_size,
                batch_size=self.batch_size,
                word_timestamps=True,
                hotwords=hotword_prompt(context),
                no_repeat_ngram_size=NO_REPEAT_NGRAM,
            )
            for chunk in chunks:
                timed = chunk.words or []
                cut = loop_start([w.word for w in timed])
                if cut is not None:
                    log.warning("Whisper repeated itself at %.1f s; the repetition was dropped", chunk.start)
                words.extend(Word(w.word, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
                             for w in timed[:cut])
                if progress:
                    progress(min(chunk.end, duration))
        if terms:
            words = correct_to_record_terms(words, terms)
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
