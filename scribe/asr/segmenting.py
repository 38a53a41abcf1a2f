"""Cut a stream of timed words into sentence-sized segments, the unit a note's evidence points at."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from scribe.transcript import Segment, Word

_SENTENCE_END = (".", "?", "!")


def segments_from_words(
    words: list[Word], *, first_id: int = 0, max_words: int = 40, max_seconds: float = 30.0
) -> list[Segment]:
    """Group words into segments ending at sentence punctuation, or earlier when one runs too long.

    Input word texts carry their own leading spaces (as Whisper emits them), so a segment's
    text is their concatenation; the segment's words come out stripped.
    """
    segments: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            text = "".join(w.word for w in current).strip()
            kept = [Word(w.word.strip(), w.start, w.end, w.probability) for w in current]
            segments.append(Segment(first_id + len(segments), current[0].start, current[-1].end, text, words=kept))
            current.clear()

    for word in words:
        if current and (len(current) >= max_words or word.end - current[0].start > max_seconds):
            close()
        current.append(word)
        if word.word.rstrip().endswith(_SENTENCE_END):
            close()
    close()
    return segments


def widest_pause(words: Sequence[Word], after: float) -> float | None:
    """The middle of the widest pause between two of `words` that starts after `after`, or None.

    Where a stream cuts speech that never pauses long enough to end an utterance: the place
    offline transcription's voice detection would most likely have cut it.
    """
    gaps = [(b.start - a.end, (a.end + b.start) / 2) for a, b in pairwise(words) if b.start >= after]
    return max(gaps)[1] if gaps else None
