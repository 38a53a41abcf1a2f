"""The words a Whisper stream has made final: in order, never revised, and what a later pass adds beyond them.

Pure: no model, no audio. Passes over a growing window overlap the words already final, so
each pass's words are read only after them (`fresh`); a pass makes words final either all of
them (the last pass of an utterance, as offline decodes a voice-detected chunk whole) or those
ending by a time (an utterance too long to wait for, cut at a pause).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scribe.transcript import Word

_NOT_WORD = re.compile(r"[^\w']+|_")


def words_after(words: list[Word], time: float) -> list[Word]:
    """The words whose midpoint lies after `time`: those a decode of overlapping audio adds beyond it."""
    return [w for w in words if (w.start + w.end) / 2 > time]


def normalize_word(text: str) -> str:
    """Case- and punctuation-insensitive form of a word: how a client finds a partial's word again in a final."""
    return _NOT_WORD.sub("", text.lower()).strip("'")


@dataclass
class Commit:
    """What one pass made final (oldest first) and the rest of its words, still provisional."""

    committed: list[Word] = field(default_factory=list)
    tail: list[Word] = field(default_factory=list)


class CommittedWords:
    """The stream's final words; a pass's hypothesis is timed words, times absolute in the stream."""

    def __init__(self) -> None:
        self.words: list[Word] = []

    @property
    def end(self) -> float:
        """End time of the last committed word (0.0 before any)."""
        return self.words[-1].end if self.words else 0.0

    def fresh(self, hypothesis: list[Word]) -> list[Word]:
        """The part of a hypothesis that lies after the committed words."""
        if not self.words:
            return list(hypothesis)
        return words_after(hypothesis, self.end)

    def commit(self, hypothesis: list[Word], until: float = float("inf")) -> Commit:
        """Make final the hypothesis's fresh words that end by `until` (all by default)."""
        fresh = self.fresh(hypothesis)
        count = next((i for i, w in enumerate(fresh) if w.end > until), len(fresh))
        return Commit(self._append(fresh[:count]), fresh[count:])

    def _append(self, words: list[Word]) -> list[Word]:
        out: list[Word] = []
        floor = self.end
        for w in words:
            start = max(w.start, floor)  # committed times never run backwards or overlap
            kept = Word(w.word, start, max(w.end, start), w.probability)
            out.append(kept)
            floor = kept.end
        self.words.extend(out)
        return out
