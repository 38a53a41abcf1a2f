"""The Whisper decoding pipeline: faster-whisper's batched pipeline, changed to decode as scribe does.

A module of its own because it subclasses faster-whisper's class, so importing it imports
faster-whisper (CTranslate2, tokenizers...): `scribe.asr.whisper` imports it only when it builds
a pipeline, and the rest of scribe starts without it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TypeAlias

import numpy as np
from ctranslate2 import StorageView
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as FwSegment
from faster_whisper.transcribe import TranscriptionOptions
from faster_whisper.transcribe import Word as FwWord

from scribe.asr.hallucinations import failure
from scribe.asr.whisper import ENCODER_MAX_FRAMES, MAX_LENGTH, DecodingOptions

log = logging.getLogger("scribe.asr")

SegmentDict: TypeAlias = dict[str, Any]
"""One decoded segment as faster-whisper passes it between its steps: text, tokens, start, end, words..."""

ChunkMetadata: TypeAlias = dict[str, Any]
"""What faster-whisper knows of one chunk of audio before decoding it: offset, duration, VAD segments."""


def _text_tokens(chunk: list[SegmentDict], eot: int) -> list[int]:
    return [t for segment in chunk for t in segment["tokens"] if t < eot]


class WhisperPipeline(BatchedInferencePipeline):  # type: ignore[misc]  # faster-whisper ships no types: Any
    """faster-whisper's batched pipeline as scribe decodes: trimmed encoder, bounded, prompted, guarded.

    Offline, chunks are decoded in lanes: lane i holds consecutive chunks, and each step
    decodes the next chunk of every lane in one batch, prompted with the text its lane
    decoded just before — context across chunks at the cost of batching. A chunk that loops,
    runs out of tokens or echoes the hotword prompt (`hallucinations`) is decoded again the
    way Whisper was trained (whole 30 s input, no prompt); the records' spellings then come
    back through `correct_to_record_terms`. Built per call: it holds that call's terms.
    """

    last_speech_timestamp: float  # set by faster-whisper's pipeline: where the last word timed ended

    def __init__(
        self,
        model: WhisperModel,
        decoding: DecodingOptions,
        terms: list[str],
        *,
        frames: int | None = None,
        guard: bool = True,
    ) -> None:
        super().__init__(model)
        self.decoding = decoding
        self.terms = terms
        self.frames = frames  # encoder input for every batch; None: from the batch's longest chunk
        self.guard = guard
        self.previous: list[list[int]] | None = None  # per chunk of the next batch: the text tokens before it
        self.redecoded = 0

    def forward(
        self,
        features: np.ndarray,
        tokenizer: Tokenizer,
        chunks_metadata: list[ChunkMetadata],
        options: TranscriptionOptions,
    ) -> list[list[SegmentDict]]:
        longest = max(c["duration"] for c in chunks_metadata)
        frames = self.frames or self.decoding.encoder_frames(longest)
        options = replace(options, max_new_tokens=self.decoding.token_budget(longest))
        last_speech = self.last_speech_timestamp
        outputs: list[list[SegmentDict]] = super().forward(
            np.ascontiguousarray(features[..., :frames]), tokenizer, chunks_metadata, options
        )
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
            again: list[list[SegmentDict]] = super().forward(
                np.ascontiguousarray(features[redo]),
                tokenizer,
                [chunks_metadata[i] for i in redo],
                replace(options, hotwords=None),
            )
            self.previous = previous
            for i, chunk in zip(redo, again, strict=True):
                outputs[i] = chunk
        return outputs

    def generate_segment_batched(
        self, features: np.ndarray, tokenizer: Tokenizer, options: TranscriptionOptions
    ) -> tuple[StorageView, list[SegmentDict]]:
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
        output: list[SegmentDict] = []
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

    def _prompt(self, tokenizer: Tokenizer, options: TranscriptionOptions, previous: list[int]) -> list[int]:
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

    def _batched_segments_generator(
        self,
        features: np.ndarray,
        tokenizer: Tokenizer,
        chunks_metadata: list[ChunkMetadata],
        batch_size: int,
        options: TranscriptionOptions,
        log_progress: bool,
    ) -> Iterator[FwSegment]:
        if not self.decoding.previous_text or len(features) < 2:
            yield from super()._batched_segments_generator(
                features, tokenizer, chunks_metadata, batch_size, options, log_progress
            )
            return
        length = -(-len(features) // batch_size)  # chunks per lane
        results: list[list[SegmentDict]] = [[] for _ in features]
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

    def _failure(self, chunk: list[SegmentDict], budget: int) -> str | None:
        words = [w["word"] for segment in chunk for w in segment.get("words") or []]
        tokens = sum(len(segment["tokens"]) for segment in chunk)
        return failure(words, self.terms, out_of_tokens=tokens >= budget)
