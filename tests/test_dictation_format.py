"""MedASR spoken-formatting tokens -> punctuation, line breaks, headings; segments keep word times."""

from __future__ import annotations

import random

import pytest

from scribe.asr.dictation_format import format_dictation, format_dictation_text
from scribe.transcript import Segment, Word, join_segment_texts


def words_of(text: str, step: float = 0.5) -> list[Word]:
    """One raw word per whitespace-separated token, `step` apart, each 80 % of `step` long."""
    return [Word(w, round(i * step, 3), round(i * step + 0.8 * step, 3), 0.9) for i, w in enumerate(text.split())]


def check_invariants(segments: list[Segment], text: str, duration: float) -> None:
    assert [s.id for s in segments] == list(range(len(segments)))
    assert text == join_segment_texts(segments)
    previous_end = 0.0
    for seg in segments:
        assert seg.words, "no empty segments"
        assert seg.start == seg.words[0].start and seg.end == seg.words[-1].end
        for w in seg.words:
            assert previous_end - 1e-9 <= w.start <= w.end <= duration + 1e-9
            previous_end = w.end
            assert w.word and w.word == w.word.strip()
        # every word appears in the segment text, in order
        pos = 0
        for w in seg.words:
            found = seg.text.find(w.word, pos)
            assert found >= 0, (w.word, seg.text)
            pos = found + len(w.word)
    for ch in "{}[]<>":
        assert ch not in text


CASES = [
    # (raw MedASR output, formatted text)
    ("the lungs are clear {period}", "The lungs are clear."),
    ("no effusion {comma} no pneumothorax {period}", "No effusion, no pneumothorax."),
    ("indication {colon} cough", "Indication: cough"),
    ("a {semicolon} b", "A; b"),
    ("any pain {question mark} none {exclamation point}", "Any pain? None!"),
    ("follow {hyphen} up", "Follow-up"),
    ("follow {dash} up", "Follow-up"),
    ("and {slash} or", "And/or"),
    ("nodule {open paren} stable {close paren} seen", "Nodule (stable) seen"),
    ("he said {open quote} fine {close quote}", 'He said "fine"'),
    ("line one {new line} line two", "Line one\nLine two"),
    ("line one {next line} line two", "Line one\nLine two"),
    ("para one {period} {new paragraph} para two {period}", "Para one.\n\nPara two."),
    ("[FINDINGS] {colon} lungs clear {period}", "FINDINGS:\nLungs clear."),
    ("[findings] lungs clear", "FINDINGS:\nLungs clear"),
    ("[EXAM TYPE] CT chest", "EXAM TYPE:\nCT chest"),
    ("history {period} [IMPRESSION] stable", "History.\n\nIMPRESSION:\nStable"),
    ("[FINDINGS] {new paragraph} clear", "FINDINGS:\nClear"),
    # MedASR also writes literal, space-separated punctuation and a trailing </s>
    (
        "[FINDINGS] : back , 6 mm macule . {new paragraph} [PLAN] : biopsy .</s>",
        "FINDINGS:\nBack, 6 mm macule.\n\nPLAN:\nBiopsy.",
    ),
    # malformed variants
    ("a {next} line} b", "A\nB"),
    ("a {new} paragraph} b", "A\n\nB"),
    ("done {period next", "Done. Next"),
    ("done period} next", "Done. Next"),
    ("done {per iod} next", "Done. Next"),
    ("done { Period } next", "Done. Next"),
    ("done {PERIOD} next", "Done. Next"),
    ("done{period}next", "Done. Next"),
    ("clear[FINDINGS]{new paragraph} normal", "Clear\n\nFINDINGS:\nNormal"),
    ("lungs FINDINGS] clear", "Lungs\n\nFINDINGS:\nClear"),
    ("lungs [IMPRESSION stable", "Lungs\n\nIMPRESSION:\nStable"),
    ("a {{period} b", "A. B"),
    ("a {period}} b", "A. B"),
    # unknown commands and stray markup vanish, words stay
    ("a {tab} b", "A b"),
    ("a {new page} b", "A b"),
    ("a { } b [ ] c", "A b c"),
    ("a } b { c ] d [", "A b c d"),
    ("a <unk> b </s>", "A b"),
    # punctuation hygiene
    ("normal {period} .", "Normal."),
    ("normal {comma} {period}", "Normal."),
    ("normal {period} {comma} next", "Normal. Next"),
    ("{period} {comma} start", "Start"),
    ("normal , . next", "Normal. Next"),
    ("the period was quiet", "The period was quiet"),  # the plain word stays a word
    ("5 mm nodule {period} 2 cm mass", "5 mm nodule. 2 cm mass"),
    ("", ""),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_formatting_table(raw: str, expected: str) -> None:
    words = words_of(raw)
    segments, text = format_dictation(words)
    assert text == expected
    check_invariants(segments, text, duration=len(words) * 0.5 + 1)
    assert format_dictation_text(raw) == expected


def test_paragraphs_and_headings_start_segments() -> None:
    raw = "history {period} {new paragraph} [FINDINGS] lungs clear {period} [IMPRESSION] {colon} normal {period}"
    segments, text = format_dictation(words_of(raw))
    assert [s.text.strip() for s in segments] == ["History.", "FINDINGS:\nLungs clear.", "IMPRESSION:\nNormal."]
    assert [w.word for w in segments[1].words] == ["FINDINGS:", "Lungs", "clear."]
    assert text == "History.\n\nFINDINGS:\nLungs clear.\n\nIMPRESSION:\nNormal."


def test_word_times_follow_the_spoken_tokens() -> None:
    words = [
        Word("no", 0.0, 0.2, 0.9),
        Word("effusion", 0.3, 0.8, 0.8),
        Word("{period}", 0.9, 1.2, 0.7),
        Word("[FINDINGS]", 2.0, 2.6, 0.6),
        Word("clear", 3.0, 3.4, 0.5),
    ]
    segments, _ = format_dictation(words)
    first, second = segments
    assert [(w.word, w.start, w.end) for w in first.words] == [("No", 0.0, 0.2), ("effusion.", 0.3, 1.2)]
    assert first.words[1].probability == 0.8
    assert [(w.word, w.start, w.end) for w in second.words] == [("FINDINGS:", 2.0, 2.6), ("Clear", 3.0, 3.4)]
    assert (second.start, second.end) == (2.0, 3.4)


def test_glued_markup_shares_the_word_time_by_characters() -> None:
    segments, text = format_dictation([Word("clear{period}next", 1.0, 2.7, None)])
    assert text == "Clear. Next"
    clear, nxt = segments[0].words
    assert clear.start == 1.0 and nxt.end == 2.7
    assert clear.end <= nxt.start


def test_long_dictation_splits_at_sentence_ends() -> None:
    sentence = "the patient reports mild pain in the left knee {period} "
    segments, text = format_dictation(words_of(sentence * 20, step=0.5))
    assert len(segments) > 1
    for seg in segments:
        assert seg.text.endswith(".")
        assert len(seg.words) <= 40 + 9
        assert seg.end - seg.start <= 30 + 5
    check_invariants(segments, text, duration=200 * 0.5 + 1)


def test_run_without_sentence_end_is_cut_at_twice_the_limits() -> None:
    segments, text = format_dictation(words_of("word " * 300, step=0.2))
    assert len(segments) > 1
    assert all(len(s.words) <= 80 for s in segments)
    check_invariants(segments, text, duration=300 * 0.2 + 1)


def test_limits_are_configurable() -> None:
    segments, _ = format_dictation(words_of("a {period} b {period} c {period}"), max_segment_words=1)
    assert [s.text for s in segments] == ["A.", "B.", "C."]


POOL = [
    "lungs",
    "clear",
    "metformin",
    "5",
    "mm",
    "(left)",
    "{period}",
    "{comma}",
    "{colon}",
    "{new",
    "paragraph}",
    "{next}",
    "line}",
    "{new line}",
    "[FINDINGS]",
    "[IMPRESSION]",
    "[EXAM",
    "TYPE]",
    "{period",
    "period}",
    "{",
    "}",
    "[",
    "]",
    "{tab}",
    "{unknown command}",
    "</s>",
    "<unk>",
    ".",
    ",",
    "{hyphen}",
    "{open paren}",
    "{close paren}",
    "{open quote}",
    "{question mark}",
    "x{period}y",
    "a[PLAN]b",
    "{per",
    "iod}",
    "{{",
    "]]",
    "FINDINGS]",
    "[PLAN",
    "{new paragraph}",
    "{dash}",
    "{slash}",
]


@pytest.mark.parametrize("seed", range(60))
def test_no_markup_survives_random_streams(seed: int) -> None:
    rng = random.Random(seed)
    raw = [rng.choice(POOL) for _ in range(rng.randint(0, 120))]
    t, words = 0.0, []
    for token in raw:
        duration = rng.uniform(0.0, 0.6)
        words.append(Word(token, round(t, 3), round(t + duration, 3), rng.random()))
        t += duration + rng.uniform(0.0, 0.3)
    segments, text = format_dictation(words, max_segment_words=rng.choice([5, 40]))
    check_invariants(segments, text, duration=t + 1)
    for seg in segments:
        for w in seg.words:
            assert not set(w.word) & set("{}[]<>")
