"""One Whisper pass over a streaming window: the short audio since the last final, timed words out.

Whisper pads every input to 30 s, so a pass over 3 s of speech would pay for 30 s of encoder.
The pass goes through faster-whisper's batched pipeline with the encoder input trimmed to the
window plus `headroom_s` (0.25 s instead of 0.9 s for 4 s of speech here). Less than ~3 s of
headroom makes Whisper loop on a phrase far more often; a pass that loops anyway is cut at
the loop, and a finishing pass is first retried the way Whisper was trained (full 30 s input,
no text prompt), so a final never carries a loop.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np

from scribe.asr.whisper import MAX_LENGTH, WhisperEngine
from scribe.transcript import Word
from streaming.repetition import without_loops
from streaming.vad import SAMPLE_RATE

log = logging.getLogger("scribe.streaming")

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
_FRAME_STEP = 100  # encoder inputs in whole seconds
_MAX_NEW_TOKENS = 200
_PROMPT_OVERHEAD = 9  # <|startofprev|>, <|startoftranscript|><|en|><|transcribe|>, <|notimestamps|>, spare for re-tokenising
_MIN_AUDIO = SAMPLE_RATE // 10  # shorter windows hold no word: not worth a pass


@cache
def _trimmed_pipeline_class():
    from faster_whisper import BatchedInferencePipeline

    class TrimmedPipeline(BatchedInferencePipeline):
        """The batched pipeline with the encoder input cut to `frames` mel frames (set before each call)."""

        frames = FULL_WINDOW_FRAMES

        def forward(self, features, tokenizer, chunks_metadata, options):
            return super().forward(np.ascontiguousarray(features[..., :self.frames]), tokenizer, chunks_metadata,
                                   options)

    return TrimmedPipeline


class WindowDecoder:
    """Decodes windows for one stream; a partial and a finishing pass may run at once on two threads."""

    def __init__(self, engine: WhisperEngine, *, hotwords: str | None = None, headroom_s: float = 4.0,
                 tokens_per_second: float = 8.0) -> None:
        self._model = engine._model
        self._tokenizer = engine._model.hf_tokenizer
        self.hotwords = hotwords
        self.headroom_s = headroom_s
        self.tokens_per_second = tokens_per_second
        self._hotword_ids = self._tokenizer.encode(" " + hotwords.strip()).ids if hotwords else []
        self.loops = 0  # passes cut at a repetition loop (for logs and tests)

    def decode(self, audio: np.ndarray, offset: float, *, prompt: str = "", beam_size: int = 1,
               context: tuple[str, ...] = (), since: float = float("-inf"), finishing: bool = False) -> list[Word]:
        """Words of `audio` (which starts at stream time `offset`), loop-free, times absolute and inside the audio.

        `context` are the committed words ending at `since` (see `without_loops`). A finishing
        pass that loops is retried once, untrimmed and unprompted.
        """
        if len(audio) < _MIN_AUDIO:
            return []
        seconds = len(audio) / SAMPLE_RATE
        frames = min(FULL_WINDOW_FRAMES, -(-int((seconds + self.headroom_s) * 100) // _FRAME_STEP) * _FRAME_STEP)
        words, looped = without_loops(self._run(audio, offset, prompt, beam_size, frames), context, since)
        if looped and finishing:
            retry, retry_looped = without_loops(self._run(audio, offset, "", beam_size, FULL_WINDOW_FRAMES), context,
                                                since)
            if not retry_looped or len(retry) > len(words):
                words, looped = retry, retry_looped
        if looped:
            self.loops += 1
            log.warning("Whisper repeated itself in a %.1f s window; the repetition was dropped", seconds)
        return words

    def _prompts(self, prompt: str, new_tokens: int) -> tuple[str | None, str | None]:
        """Hotwords and text prompt, cut so that they and `new_tokens` fit Whisper's 448-token context.

        faster-whisper caps each at half the context but not their sum: long records plus a long
        prompt would fail every pass. The hotwords (the records' vocabulary) keep precedence;
        the text prompt keeps its end, the words nearest the window.
        """
        room = MAX_LENGTH - _PROMPT_OVERHEAD - new_tokens
        hot = self._hotword_ids[:max(0, min(room, MAX_LENGTH // 2 - 1))]
        room -= len(hot)
        text = self._tokenizer.encode(prompt).ids[-room:] if prompt and room > 0 else []
        return (self._tokenizer.decode(hot) or None), (self._tokenizer.decode(text) or None)

    def _run(self, audio: np.ndarray, offset: float, prompt: str, beam_size: int, frames: int) -> list[Word]:
        seconds = len(audio) / SAMPLE_RATE
        new_tokens = min(_MAX_NEW_TOKENS, int(10 + self.tokens_per_second * seconds))  # a loop stops early
        hotwords, initial_prompt = self._prompts(prompt, new_tokens)
        pipeline = _trimmed_pipeline_class()(self._model)  # one per call (cheap): `frames` is per call
        pipeline.frames = frames
        segments, _info = pipeline.transcribe(
            audio,
            language="en",
            beam_size=beam_size,
            word_timestamps=True,
            vad_filter=False,
            clip_timestamps=[{"start": 0.0, "end": seconds}],
            initial_prompt=initial_prompt,
            hotwords=hotwords,
            max_new_tokens=new_tokens,
        )
        words: list[Word] = []
        for segment in segments:
            for w in segment.words or []:
                start = min(max(offset + float(w.start), offset), offset + seconds)
                end = min(max(offset + float(w.end), start), offset + seconds)
                words.append(Word(w.word, round(start, 3), round(end, 3), round(float(w.probability), 4)))
        return words
