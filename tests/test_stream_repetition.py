"""Repetition loops are cut before a hypothesis is used; speech that repeats a word or two is kept."""

import pytest

from scribe.asr.hallucinations import loop_start
from scribe.streaming.repetition import without_loops
from scribe.transcript import Word


def timed(text: str, start: float = 0.0, step: float = 0.4) -> list[Word]:
    return [
        Word(" " + w, round(start + i * step, 3), round(start + (i + 1) * step - 0.05, 3))
        for i, w in enumerate(text.split())
    ]


def text(words: list[Word]) -> str:
    return " ".join(w.word.strip() for w in words)


@pytest.mark.parametrize(
    ("words", "cut"),
    [
        ("weak urinary stream and weak urinary stream and weak urinary stream and weak", 4),
        ("Weak urinary stream, and weak urinary stream. And weak urinary stream and", 4),  # punctuation ignored
        ("I'm sorry, I'm sorry, I'm sorry, I'm sorry, I", 2),
        ("We We We We We We We", 1),
        ("take 5 5 5 5 5 5", 2),
        ("x y z x y z x y z then more", 3),
        # speech: a word said three times, a phrase said twice, nothing repeated
        ("no no no pain today", None),
        ("take one tablet take one tablet daily", None),
        ("atrial fibrillation follow up", None),
        ("", None),
    ],
)
def test_loop_start(words, cut):
    assert loop_start(words.split()) == cut


def test_a_loop_inside_the_context_is_not_reported_but_one_carried_on_from_it_is():
    context = "a b a b a b".split()
    assert loop_start([*context, "c", "d"], after=len(context)) is None
    assert loop_start([*context, "a", "b"], after=len(context)) == len(context)
    assert loop_start(["okay", "no", "no", "no", "no"], after=2) == 2


def test_without_loops_keeps_what_was_said_once():
    words = timed("weak urinary stream and weak urinary stream and weak urinary stream and weak urinary")
    kept, looped = without_loops(words)
    assert looped and text(kept) == "weak urinary stream and"
    assert without_loops(timed("on tamsulosin 0.4 milligrams")) == (timed("on tamsulosin 0.4 milligrams"), False)


def test_without_loops_checks_new_words_as_a_continuation_of_the_committed_ones():
    committed = ["take", "5", "5"]
    # the pass re-decodes the committed "5 5" (before `since`), then carries the loop on
    words = timed("5 5 5 5 milligrams", start=1.0)
    kept, looped = without_loops(words, committed, since=1.75)
    assert looped and text(kept) == "5 5"
    # the same words after a context that does not repeat them are speech
    assert without_loops(timed("5 milligrams daily", start=1.0), committed, since=1.75)[1] is False
