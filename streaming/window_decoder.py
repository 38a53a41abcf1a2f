"""One Whisper pass over a streaming window: the short audio since the last final, timed words out.

The pass is the engine's own (`WhisperEngine.decode_window`): the same pipeline, options and
guards as offline transcription, with the window's text before it as the prompt. What is
particular to a stream lives here: a pass is checked for a loop as a continuation of the
words already committed (a window that starts after them can carry their loop on), and a
finishing pass that still loops is decoded once more the
way Whisper was trained (full 30 s input, no prompt), so a final never carries a loop.
"""

from __future__ import annotations

import logging

import numpy as np

from scribe.asr.whisper import WhisperEngine
from scribe.audio import SAMPLE_RATE
from scribe.streaming.repetition import without_loops
from scribe.transcript import Word

log = logging.getLogger("scribe.streaming")

_MIN_AUDIO = SAMPLE_RATE // 10  # shorter windows hold no word: not worth a pass


class WindowDecoder:
    """Decodes windows for one stream; a partial and a finishing pass may run at once on two threads."""

    def __init__(self, engine: WhisperEngine, *, hotwords: str | None = None, terms: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self.hotwords = hotwords
        self.terms = terms
        self.loops = 0  # passes cut at a repetition loop (for logs and tests)

    def decode(
        self,
        audio: np.ndarray,
        offset: float,
        *,
        prompt: str = "",
        beam_size: int = 1,
        context: tuple[str, ...] = (),
        since: float = float("-inf"),
        finishing: bool = False,
    ) -> list[Word]:
        """Words of `audio` (which starts at stream time `offset`), loop-free, times absolute and inside the audio.

        `context` are the committed words ending at `since` (see `without_loops`).
        """
        if len(audio) < _MIN_AUDIO:
            return []
        words, looped = without_loops(self._run(audio, offset, prompt, beam_size, finishing, False), context, since)
        if looped and finishing:
            retry, retry_looped = without_loops(
                self._run(audio, offset, "", beam_size, finishing, True), context, since
            )
            if not retry_looped or len(retry) > len(words):
                words, looped = retry, retry_looped
        if looped:
            self.loops += 1
            log.warning(
                "Whisper repeated itself in a %.1f s window; the repetition was dropped", len(audio) / SAMPLE_RATE
            )
        return words

    def _run(
        self, audio: np.ndarray, offset: float, prompt: str, beam_size: int, finishing: bool, whole_encoder: bool
    ) -> list[Word]:
        words = self.engine.decode_window(
            audio,
            prompt=prompt,
            hotwords=None if whole_encoder else self.hotwords,
            terms=self.terms,
            beam_size=beam_size,
            whole_encoder=whole_encoder,
            guard=finishing,
        )
        return [Word(w.word, round(offset + w.start, 3), round(offset + w.end, 3), w.probability) for w in words]
