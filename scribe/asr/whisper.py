"""Whisper through faster-whisper (CTranslate2): the bundled offline default and the engine for conversations."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scribe.asr import bundled_whisper
from scribe.asr.base import ProgressCallback
from scribe.asr.cores import usable_cores
from scribe.asr.dose_terms import correct_doses
from scribe.asr.hallucinations import loop_start
from scribe.asr.record_terms import correct_to_record_terms
from scribe.asr.segmenting import segments_from_words
from scribe.audio import SAMPLE_RATE
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.resources import render_template
from scribe.transcript import Transcript, Word, join_segment_texts

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from scribe.asr.whisper_pipeline import WhisperPipeline

log = logging.getLogger("scribe.asr")


def hotword_prompt(context: PatientContext | None) -> str | None:
    """The records' vocabulary as a Whisper hotword prompt (rendered from templates/prompts)."""
    terms = context.hotwords() if context is not None else []
    if not terms:
        return None
    return render_template("prompts/asr_hotwords.txt.j2", terms=terms).strip() or None


def respell(words: list[Word], terms: list[str]) -> list[Word]:
    """What Whisper's words go through before they become segments, offline and streaming alike.

    Near-misses of the records' drug names, then units and frequencies written by ear (`dose_terms`).
    """
    return correct_doses(correct_to_record_terms(words, terms) if terms else list(words))


def _cuda_available() -> bool:
    import ctranslate2

    try:
        devices: int = ctranslate2.get_cuda_device_count()
        return devices > 0
    except RuntimeError:
        return False


# Threads per Whisper call, measured here with numpy's BLAS on one thread (see _single_threaded_blas): base's
# matrices are too small to gain from a second thread. One decodes a streaming pass at 8 ms a token against
# 16 ms on two, and transcribes the samples at RTF 0.06 to 0.07 against 0.09; further cores serve further
# calls (sessions) at once.
WHISPER_CALL_THREADS = 1
ENCODER_MAX_FRAMES = 3000  # Whisper's 30 s window of 10 ms mel frames
MAX_LENGTH = 448  # Whisper's token context: prompt + output


@dataclass(frozen=True)
class DecodingOptions:
    """How Whisper decodes, offline and streaming alike: one set of defaults, each measured (docs/asr.md).

    The encoder gets only the speech plus `encoder_padding_s`, rounded up to `encoder_step_s`
    (Whisper pads every input to 30 s, so a 12 s chunk would pay for 30 s of encoder): 4 s of
    padding gave 126 errors against 131 for 1 s on 25 short dictations offline, 139 against 144
    streamed; with less, Whisper loops more often on short windows. A decode may write `min_tokens`
    + `tokens_per_second` per second of audio — twice the fastest speech here — so a loop stops there instead of at
    Whisper's 448-token context, and no phrase of `no_repeat_ngram_size` tokens comes twice.
    `previous_text` prompts each chunk with the text decoded before it (see `WhisperPipeline`).
    """

    beam_size: int = 5
    batch_size: int = 8
    hotwords: bool = True  # the records' vocabulary as Whisper's hotword prompt
    previous_text: bool = True
    no_repeat_ngram_size: int = 10
    tokens_per_second: float = 12.0
    min_tokens: int = 24
    encoder_padding_s: float = 4.0
    encoder_step_s: float = 1.0

    def encoder_frames(self, longest_s: float) -> int:
        """Mel frames to encode for a batch whose longest chunk lasts `longest_s`."""
        step = int(round(self.encoder_step_s * 100))
        needed = int(longest_s * 100) + int(round(self.encoder_padding_s * 100))
        return min(ENCODER_MAX_FRAMES, -(-needed // step) * step)

    def token_budget(self, longest_s: float, prompt_tokens: int = 0) -> int:
        """Most tokens a batch may decode, leaving room for its prompt in Whisper's context."""
        wanted = self.min_tokens + math.ceil(self.tokens_per_second * longest_s)
        return max(1, min(MAX_LENGTH - prompt_tokens, wanted))


def _pipeline_class() -> type[WhisperPipeline]:
    """The pipeline class, imported on first use: it brings faster-whisper with it (see `whisper_pipeline`)."""
    from scribe.asr.whisper_pipeline import WhisperPipeline

    return WhisperPipeline


def _single_threaded_blas() -> None:
    """Keep numpy's OpenBLAS on one thread: its idle threads spin after every call and take a core from the decoder.

    faster-whisper's feature extractor makes one small matrix product per call; the spinning
    that follows cost a streaming server 7.7 s of CPU in 30 s at one session on two cores,
    and the end-of-speech latency with it. Only OpenBLAS is limited (torch brings its own).
    """
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


class WhisperEngine:
    """Whisper for whole recordings (`transcribe`) and for streaming windows (`decode_window`), one pipeline under both.

    Offline, VAD cuts speech into chunks decoded in batches, about half the CPU of sequential.
    """

    name = "whisper"

    def __init__(
        self,
        model: WhisperModel,
        model_version: str,
        options: DecodingOptions | None = None,
        workers: int = 1,
        threads: int = 1,
    ) -> None:
        self._model = model
        self.model = model_version
        self.options = options or DecodingOptions()
        self.workers = workers  # calls that may run at once, each on its own threads
        self.threads = threads  # CPU threads of each call

    @property
    def beam_size(self) -> int:
        return self.options.beam_size

    @classmethod
    def load(cls, source: str | None, settings: Settings, *, serving: bool = False) -> WhisperEngine:
        """Load the bundled model (source None), a local CTranslate2 directory, or a cached hub model.

        Never downloads: a name that is not in the local Hugging Face cache is an error. A
        service (`serving`) runs many calls at once, each on `WHISPER_CALL_THREADS`; one offline
        call at a time gets every core (RTF 0.076 on two threads against 0.115 on one, same WER).
        """
        from faster_whisper import WhisperModel

        if source is None:
            path, version = str(bundled_whisper.ensure_bundled(settings.models_dir)), bundled_whisper.MODEL_VERSION
        elif Path(source).expanduser().is_dir():
            path, version = str(Path(source).expanduser()), f"faster-whisper:{Path(source).name}"
        else:
            path, version = source, f"faster-whisper:{source}"
        use_cuda = settings.asr_device == "cuda" or (settings.asr_device == "auto" and _cuda_available())
        cores = usable_cores()  # in a container: its CPU quota, not the machine's cores
        threads = settings.asr_threads or (min(cores, WHISPER_CALL_THREADS) if serving else cores)
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
                f"cannot load Whisper model {source!r}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                "Give a faster-whisper model directory, or a model name already in the local Hugging Face cache."
            ) from None
        return cls(
            model, version, DecodingOptions(beam_size=settings.whisper_beam_size), workers=workers, threads=threads
        )

    def with_options(self, **changes: Any) -> WhisperEngine:
        """The same loaded model decoding with other options (for ablations and tests)."""
        return WhisperEngine(self._model, self.model, replace(self.options, **changes), self.workers, self.threads)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        context: PatientContext | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        started = time.perf_counter()
        duration = len(audio) / SAMPLE_RATE
        terms = context.hotwords() if context is not None else []  # respelled to, as streaming does
        words: list[Word] = []
        if duration > 0:
            pipeline = _pipeline_class()(self._model, self.options, terms)
            chunks, _info = pipeline.transcribe(
                audio,
                language="en",
                beam_size=self.options.beam_size,
                batch_size=self.options.batch_size,
                word_timestamps=True,
                hotwords=hotword_prompt(context) if terms and self.options.hotwords else None,
                no_repeat_ngram_size=self.options.no_repeat_ngram_size,
            )
            for chunk in chunks:
                timed = chunk.words or []
                cut = loop_start([w.word for w in timed])
                if cut is not None:
                    log.warning("Whisper repeated itself at %.1f s; the repetition was dropped", chunk.start)
                words.extend(
                    Word(w.word, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
                    for w in timed[:cut]
                )
                if progress:
                    progress(min(chunk.end, duration))
        segments = segments_from_words(respell(words, terms))
        return Transcript(
            text=join_segment_texts(segments),
            language="en",
            engine=self.name,
            model=self.model,
            duration_s=round(duration, 3),
            processing_s=round(time.perf_counter() - started, 3),
            segments=segments,
        )

    def decode_window(
        self,
        audio: np.ndarray,
        *,
        prompt: str = "",
        hotwords: str | None = None,
        terms: Sequence[str] = (),
        beam_size: int | None = None,
        whole_encoder: bool = False,
        guard: bool = False,
    ) -> list[Word]:
        """Timed words of one streaming window (times from the window's start, inside it), as offline decodes.

        `prompt` is the text before the window; `hotwords`/`terms` the records' prompt and
        vocabulary; `whole_encoder` encodes Whisper's full 30 s input; `guard` decodes a chunk
        that failed again without a prompt, as offline (a final's pass; a partial's is cut).
        """
        seconds = len(audio) / SAMPLE_RATE
        pipeline = _pipeline_class()(
            self._model, self.options, list(terms), frames=ENCODER_MAX_FRAMES if whole_encoder else None, guard=guard
        )
        if prompt.strip():
            pipeline.previous = [self._model.hf_tokenizer.encode(" " + prompt.strip(), add_special_tokens=False).ids]
        segments, _info = pipeline.transcribe(
            audio,
            language="en",
            beam_size=beam_size or self.options.beam_size,
            word_timestamps=True,
            vad_filter=False,
            clip_timestamps=[{"start": 0.0, "end": seconds}],
            hotwords=hotwords if self.options.hotwords else None,
            no_repeat_ngram_size=self.options.no_repeat_ngram_size,
        )
        words: list[Word] = []
        for segment in segments:
            for w in segment.words or []:
                start = min(max(float(w.start), 0.0), seconds)
                end = min(max(float(w.end), start), seconds)
                words.append(Word(w.word, round(start, 3), round(end, 3), round(float(w.probability), 4)))
        return words
