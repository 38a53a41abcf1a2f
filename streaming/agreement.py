"""Local agreement: which words of successive streaming hypotheses are safe to make final.

A word is committed once two successive passes agree on it (and on everything before it);
committed words are never revised. This trades one pass of latency for finals that match
what a pass over more audio would say. Pure: no model, no audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scribe.transcript import Word

_NOT_WORD = re.compile(r"[^\w']+|_")


def normalize_word(text: str) -> str:
    """Case- and punctuation-insensitive form used to compare words across passes."""
    return _NOT_WORD.sub("", text.lower()).strip("'")


@dataclass
class Agreement:
    """What one hypothesis changed: words newly committed (oldest first) and the uncommitted tail."""

    committed: list[Word] = field(default_factory=list)
    tail: list[Word] = field(default_factory=list)


class LocalAgreement:
    """Commits the longest common prefix of the last two hypotheses beyond what is already committed.

    Hypotheses are timed words, times absolute in the stream. A hypothesis may start before the
    committed point (a pass over audio that overlaps committed words): words whose midpoint lies
    before the end of the last committed word are ignored, so nothing is committed twice.
    """

    def __init__(self) -> None:
        self.committed: list[Word] = []
        self._previous: list[Word] = []

    @property
    def committed_end(self) -> float:
        """End time of the last committed word (0.0 before any)."""
        return self.committed[-1].end if self.committed else 0.0

    def fresh(self, hypothesis: list[Word]) -> list[Word]:
        """The part of a hypothesis that lies after the committed words."""
        if not self.committed:
            return list(hypothesis)
        end = self.committed_end
        return [w for w in hypothesis if (w.start + w.end) / 2 > end]

    def update(self, hypothesis: list[Word], stable_until: float | None = None) -> Agreement:
        """Feed the next hypothesis; commit what it shares with the previous one.

        With `stable_until`, only words ending by then may commit: the last words before the
        end of a pass's audio are the ones the next pass most often rewrites.
        """
        current = self.fresh(hypothesis)
        previous = self.fresh(self._previous)
        agreed = 0
        for old, new in zip(previous, current):
            if normalize_word(old.word) != normalize_word(new.word):
                break
            if stable_until is not None and new.end > stable_until:
                break
            agreed += 1
        newly = self._commit(current[:agreed])  # the newer pass's times and punctuation: it heard more audio
        self._previous = current[agreed:]
        return Agreement(newly, list(self._previous))

    def commit_until(self, hypothesis: list[Word], until: float) -> Agreement:
        """Force-commit the hypothesis words ending by `until` (a buffer that must shrink); keep the rest pending."""
        current = self.fresh(hypothesis)
        cut = next((i for i, w in enumerate(current) if w.end > until), len(current))
        newly = self._commit(current[:cut])
        self._previous = current[cut:]
        return Agreement(newly, list(self._previous))

    def finish(self, last_hypothesis: list[Word]) -> Agreement:
        """End of utterance: commit everything of the last hypothesis; the next utterance starts afresh."""
        newly = self._commit(self.fresh(last_hypothesis))
        self._previous = []
        return Agreement(newly, [])

    def _commit(self, words: list[Word]) -> list[Word]:
        out: list[Word] = []
        floor = self.committed_end
        for w in words:
            start = max(w.start, floor)  # committed times never run backwards or overlap
            kept = Word(w.word, start, max(w.end, start), w.probability)
            out.append(kept)
            floor = kept.end
        self.committed.extend(out)
        return out
