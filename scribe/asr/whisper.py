"""Whisper through faster-whisper (CTranslate2): the bundled offline default and the engine for conversations."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from scribe.asr import bundled_whisper
from scribe.asr.base import ProgressCallback
from scribe.asr.cores import usable_cores
from scribe.asr.dose_terms import correct_doses
from scribe.asr.hallucinations import failure, loop_start
from scribe.asr.record_terms import correct_to_record_terms
from scribe.asr.segmenting import segments_from_words
from scribe.audio import SAMPLE_RATE
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


def respell(words: list[Word], terms: list[str]) -> list[Word]:
    """What Whisper's words go through before they become segments, offline and streaming alike.

    Near-misses of the records' drug names, then units and frequencies written by ear (`dose_terms`).
    """
    return correct_doses(correct_to_record_terms(words, terms) if terms else list(words))


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


def _text_tokens(chunk: list[dict], eot: int) -> list[int]:
    return [t for segment in chunk for t in segment["tokens"] if t < eot]


@cache
def _pipeline_class():
    from faster_whisper import BatchedInferencePipeline
    from faster_whisper.transcribe import Segment as FwSegment
    from faster_whisper.transcribe import Word as FwWord

    class WhisperPipeline(BatchedInferencePipeline):
        """faster-whisper's batched pipeline as scribe decodes: trimmed encoder, bounded, prompted, guarded.

        Offline, chunks are decoded in lanes: lane i holds consecutive chunks, and each step
        decodes the next chunk of every lane in one batch, prompted with the text its lane
        decoded just before — context across chunks at the cost of batching. A chunk that loops,
        runs out of tokens or echoes the hotword prompt (`hallucinations`) is decoded again the
        way Whisper was trained (whole 30 s input, no prompt); the records' spellings then come
        back through `correct_to_record_terms`. Built per call: it holds that call's terms.
        """

        def __init__(
            self, model, decoding: DecodingOptions, terms: list[str], *, frames: int | None = None, guard: bool = True
        ) -> None:
            super().__init__(model)
            self.decoding = decoding
            self.terms = terms
            self.frames = frames  # encoder input for every batch; None: from the batch's longest chunk
            self.guard = guard
            self.previous: list[list[int]] | None = None  # per chunk of the next batch: the text tokens before it
            self.redecoded = 0

        def forward(self, features, tokenizer, chunks_metadata, options):
            longest = max(c["duration"] for c in chunks_metadata)
            frames = self.frames or self.decoding.encoder_frames(longest)
            options = replace(options, max_new_tokens=self.decoding.token_budget(longest))
            last_speech = self.last_speech_timestamp
            outputs = super().forward(np.ascontiguousarray(features[..., :frames]), tokenizer, chunks_metadata, options)
            if not self.guard:
                return outputs
            failures = [self._failure(chunk, options.max_new_tokens) for chunk in outputs]
            redo = [i for i, why in enumerate(failures) if why]
            if redo and (options.hotwords or self.previous or frames < ENCODER_MAX_FRAMES):
                log.warning(
                    "Whisper %s; %d of %d chunks decoded again without a prompt",
                    failures[redo[0]],
                    len(redo),
                    len(outputs),
                )
                self.redecoded += len(redo)
                self.last_speech_timestamp = last_speech
                previous, self.previous = self.previous, None
                again = super().forward(
                    np.ascontiguousarray(features[redo]),
                    tokenizer,
                    [chunks_metadata[i] for i in redo],
                    replace(options, hotwords=None),
                )
                self.previous = previous
                for i, chunk in zip(redo, again, strict=True):
                    outputs[i] = chunk
            return outputs

        def generate_segment_batched(self, features, tokenizer, options):
            """One batch with a prompt per chunk (faster-whisper gives the whole batch one).

            CTranslate2 needs the prompts of a batch equally long, so each keeps as much of its
            text before as the shortest has.
            """
            previous = self.previous or [[] for _ in range(features.shape[0])]
            shortest = min(len(tokens) for tokens in previous)
            prompts = [self._prompt(tokenizer, options, tokens[len(tokens) - shortest :]) for tokens in previous]
            encoder_output = self.model.encode(features)
            results = self.model.model.generate(
                encoder_output,
                prompts,
                beam_size=options.beam_size,
                patience=options.patience,
                length_penalty=options.length_penalty,
                max_length=max(map(len, prompts)) + options.max_new_tokens,
                suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens,
                return_scores=True,
                return_no_speech_prob=True,
                sampling_temperature=options.temperatures[0],
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
            )
            output = []
            for result in results:
                tokens = result.sequences_ids[0]
                total_logprob = result.scores[0] * len(tokens) ** options.length_penalty
                output.append(
                    {
                        "avg_logprob": total_logprob / (len(tokens) + 1),
                        "no_speech_prob": result.no_speech_prob,
                        "tokens": tokens,
                    }
                )
            return encoder_output, output

        def _prompt(self, tokenizer, options, previous: list[int]) -> list[int]:
            """Hotwords, then the text before, cut to leave the decode its budget in Whisper's 448 tokens.

            The hotwords (the records' vocabulary) keep precedence, each half of the context at
            most; the text before keeps its end, the words nearest the audio.
            """
            tail = [*tokenizer.sot_sequence, *([tokenizer.no_timestamps] if options.without_timestamps else [])]
            room = MAX_LENGTH - options.max_new_tokens - len(tail) - 1
            hot = tokenizer.encode(" " + options.hotwords.strip()) if options.hotwords else []
            hot = hot[: max(0, min(room, MAX_LENGTH // 2 - 1))]
            keep = max(0, min(room - len(hot), MAX_LENGTH // 2 - 1))
            before = previous[-keep:] if keep else []
            return ([tokenizer.sot_prev, *hot, *before] if hot or before else []) + tail

        def _batched_segments_generator(self, features, tokenizer, chunks_metadata, batch_size, options, log_progress):
            if not self.decoding.previous_text or len(features) < 2:
                yield from super()._batched_segments_generator(
                    features, tokenizer, chunks_metadata, batch_size, options, log_progress
                )
                return
            length = -(-len(features) // batch_size)  # chunks per lane
            results: list[list[dict]] = [[] for _ in features]
            for step in range(length):
                batch = [i for i in range(step, len(features), length)]
                self.previous = [_text_tokens(results[i - 1], tokenizer.eot) if step else [] for i in batch]
                self.last_speech_timestamp = 0.0
                for i, chunk in zip(
                    batch,
                    self.forward(features[batch], tokenizer, [chunks_metadata[i] for i in batch], options),
                    strict=True,
                ):
                    results[i] = chunk
            self.previous = None
            for number, segment in enumerate((s for chunk in results for s in chunk), 1):
                yield FwSegment(
                    seek=segment["seek"],
                    id=number,
                    text=segment["text"],
                    start=round(segment["start"], 3),
                    end=round(segment["end"], 3),
                    words=[FwWord(**word) for word in segment["words"]] if options.word_timestamps else None,
                    tokens=segment["tokens"],
                    avg_logprob=segment["avg_logprob"],
                    no_speech_prob=segment["no_speech_prob"],
                    compression_ratio=segment["compression_ratio"],
                    temperature=options.temperatures[0],
                )

        def _failure(self, chunk: list[dict], budget: int) -> str | None:
            words = [w["word"] for segment in chunk for w in segment.get("words") or []]
            tokens = sum(len(segment["tokens"]) for segment in chunk)
            return failure(words, self.terms, out_of_tokens=tokens >= budget)

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
        self, model, model_version: str, options: DecodingOptions | None = None, workers: int = 1, threads: int = 1
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

    def with_options(self, **changes) -> WhisperEngine:
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
        terms = context.hotwords() if context is not None and self.options.hotwords else []
        words: list[Word] = []
        if duration > 0:
            pipeline = _pipeline_class()(self._model, self.options, terms)
            chunks, _info = pipeline.transcribe(
                audio,
                language="en",
                beam_size=self.options.beam_size,
                batch_size=self.options.batch_size,
                word_timestamps=True,
                hotwords=hotword_prompt(context) if terms else None,
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
