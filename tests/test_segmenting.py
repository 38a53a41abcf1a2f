"""Timed words into sentence-sized segments, and where to cut speech that never pauses long enough."""

from scribe.asr.segmenting import segments_from_words, widest_pause
from scribe.transcript import Word


def timed(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(" " + text, start, end) for text, start, end in spans]


def test_segments_end_at_sentence_punctuation_and_keep_their_words():
    words = timed(("Blood", 0.0, 0.3), ("pressure.", 0.3, 0.8), ("Continue", 1.0, 1.4), ("lisinopril.", 1.4, 2.0))
    segments = segments_from_words(words, first_id=3)
    assert [(s.id, s.text) for s in segments] == [(3, "Blood pressure."), (4, "Continue lisinopril.")]
    assert [w.word for w in segments[1].words] == ["Continue", "lisinopril."]
    assert (segments[1].start, segments[1].end) == (1.0, 2.0)


def test_widest_pause_is_the_widest_gap_after_the_time_given():
    words = timed(("a", 0.0, 1.0), ("b", 1.9, 2.0), ("c", 2.3, 3.0), ("d", 3.6, 4.0), ("e", 4.1, 5.0))
    assert widest_pause(words, 0.0) == 1.45  # between a and b
    assert widest_pause(words, 2.5) == 3.3  # the widest of those starting after 2.5 s: c-d
    assert widest_pause(words, 4.5) is None  # no gap begins after 4.5 s
    assert widest_pause([], 0.0) is None
