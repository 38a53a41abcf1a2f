"""Local agreement: which words of successive streaming hypotheses are safe to make final.

A word is committed once two successive passes agree on it (and on everything before it), or,
with a span, every pass over the last `span_s` seconds of added audio; committed words are
never revised. This trades latency for finals that match what a pass over more audio would
say. Pure: no model, no audio.
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
    """Case- and punctuation-insensitive form used to compare words across passes."""
    return _NOT_WORD.sub("", text.lower()).strip("'")


@dataclass
class Agreement:
    """What one hypothesis changed: words newly committed (oldest first) and the uncommitted tail."""

    committed: list[Word] = field(default_factory=list)
    tail: list[Word] = field(default_factory=list)


class LocalAgreement:
    """Commits the longest common prefix of the recent hypotheses beyond what is already committed.

    Hypotheses are timed words, times absolute in the stream. A hypothesis may start before the
    committed point (a pass over audio that overlaps committed words): words whose midpoint lies
    before the end of the last committed word are ignored, so nothing is committed twice.
    """

    def __init__(self, span_s: float = 0.0) -> None:
        self.span_s = span_s
        self.committed: list[Word] = []
        self._previous: list[Word] = []
        self._history: list[tuple[float, list[Word]]] = []  # (audio heard until, hypothesis) of recent passes

    @property
    def committed_end(self) -> float:
        """End time of the last committed word (0.0 before any)."""
        return self.committed[-1].end if self.committed else 0.0

    def fresh(self, hypothesis: list[Word]) -> list[Word]:
        """The part of a hypothesis that lies after the committed words."""
        if not self.committed:
            return list(hypothesis)
        return words_after(hypothesis, self.committed_end)

    def update(
        self,
        hypothesis: list[Word],
        stable_until: float | None = None,
        heard_until: float | None = None,
        force_until: float | None = None,
    ) -> Agreement:
        """Feed the next hypothesis; commit what it shares with the previous one.

        With `stable_until`, only words ending by then may commit: the last words before the
        end of a pass's audio are the ones the next pass most often rewrites. With `span_s` and
        `heard_until` (the end of the audio the pass heard), a word must also be agreed by every
        pass of the last `span_s` seconds of audio and one before them: passes a few hundred ms
        apart often agree on a word that a second more audio changes ("I'm God" -> "I'm good").
        Words ending by `force_until` commit as this hypothesis has them, agreed or not (a bound
        on how long a word the passes keep changing can hold back everything after it).
        """
        current = self.fresh(hypothesis)
        agreed = 0
        for i, new in enumerate(current):
            if stable_until is not None and new.end > stable_until:
                break
            agreed = i + 1
        for old in self._witnesses(heard_until):
            agreed = min(agreed, _common_prefix(self.fresh(old), current))
        if force_until is not None:
            agreed = max(agreed, next((i for i, w in enumerate(current) if w.end > force_until), len(current)))
        newly = self._commit(current[:agreed])  # the newer pass's times and punctuation: it heard more audio
        self._previous = current[agreed:]
        if heard_until is not None and self.span_s > 0:
            self._history.append((heard_until, hypothesis))
        else:
            self._history = []
        return Agreement(newly, list(self._previous))

    def _witnesses(self, heard_until: float | None) -> list[list[Word]]:
        """Earlier hypotheses the current one must agree with (none yet: nothing may commit)."""
        if heard_until is None or self.span_s <= 0:
            return [self._previous]
        older = [i for i, (heard, _) in enumerate(self._history) if heard <= heard_until - self.span_s]
        if not older:
            return [[]]
        self._history = self._history[older[-1] :]
        return [words for _, words in self._history]

    def finish(self, last_hypothesis: list[Word]) -> Agreement:
        """End of utterance: commit everything of the last hypothesis; the next utterance starts afresh."""
        newly = self._commit(self.fresh(last_hypothesis))
        self._previous = []
        self._history = []
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


def _common_prefix(a: list[Word], b: list[Word]) -> int:
    """Number of leading words two hypotheses share (case and punctuation ignored)."""
    n = 0
    for old, new in zip(a, b, strict=False):  # the common prefix
        if normalize_word(old.word) != normalize_word(new.word):
            break
        n += 1
    return n
