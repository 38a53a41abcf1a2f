"""Cut a stream of timed words into sentence-sized segments, the unit a note's evidence points at."""

from __future__ import annotations

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
