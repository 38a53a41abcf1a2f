"""LocalAgreement: commit what two successive hypotheses share, never revise it."""

import pytest

from scribe.streaming.agreement import LocalAgreement, normalize_word
from scribe.transcript import Word


def hyp(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [Word(" " + w, start + i * step, start + (i + 1) * step - 0.05) for i, w in enumerate(text.split())]


def words(ws: list[Word]) -> str:
    return " ".join(w.word.strip() for w in ws)


@pytest.mark.parametrize(
    "hypotheses, committed, tail",
    [
        (["follow up"], [""], ["follow up"]),
        (["follow up", "follow up for"], ["", "follow up"], ["follow up", "for"]),
        (["far lower", "follow up"], ["", ""], ["far lower", "follow up"]),
        # shrinking: only the shared prefix commits
        (["she takes apixaban five", "she takes"], ["", "she takes"], ["she takes apixaban five", ""]),
        # punctuation and case do not block agreement; the newer pass's form is kept
        (["Blood pressure,", "blood pressure. 142"], ["", "blood pressure."], ["Blood pressure,", "142"]),
        # repeated words count position by position
        (["no no pain", "no no no"], ["", "no no"], ["no no pain", "no"]),
        # committed words are not committed again
        (["a b c", "a b c d", "a b c d e"], ["", "a b c", "d"], ["a b c", "d", "e"]),
    ],
)
def test_update_table(hypotheses, committed, tail):
    agreement = LocalAgreement()
    for text, want_committed, want_tail in zip(hypotheses, committed, tail, strict=True):
        result = agreement.update(hyp(text))
        assert words(result.committed) == want_committed
        assert words(result.tail) == want_tail


def test_never_revises_and_later_disagreement_only_changes_the_tail():
    agreement = LocalAgreement()
    agreement.update(hyp("start metformin today"))
    agreement.update(hyp("start metformin tomorrow"))
    result = agreement.update(hyp("stop metformin tomorrow"))  # contradicts committed words
    assert words(result.committed) == "tomorrow" and result.tail == []
    assert words(agreement.committed) == "start metformin tomorrow"  # "start" stays as first committed


def test_hypothesis_from_a_later_window_skips_committed_words_by_time():
    agreement = LocalAgreement()
    agreement.update(hyp("a b c"))
    agreement.update(hyp("a b c"))
    later = hyp("c d e", start=1.0)  # overlaps the committed "c"
    agreement.update(later)
    result = agreement.update(later)
    assert words(result.committed) == "d e"


def test_stable_until_holds_back_the_last_words():
    agreement = LocalAgreement()
    agreement.update(hyp("a b c d"))
    result = agreement.update(hyp("a b c d"), stable_until=1.0)
    assert words(result.committed) == "a b" and words(result.tail) == "c d"


def test_finish_commits_everything_and_starts_afresh():
    agreement = LocalAgreement()
    agreement.update(hyp("a b"))
    result = agreement.finish(hyp("a b c", step=0.4))
    assert words(result.committed) == "a b c" and result.tail == []
    assert agreement.update(hyp("x", start=5.0)).committed == []


def test_force_until_commits_words_ending_by_the_time_agreed_or_not():
    agreement = LocalAgreement(span_s=1.0)
    result = agreement.update(hyp("a b c d"), heard_until=2.0, force_until=1.0)
    assert words(result.committed) == "a b" and words(result.tail) == "c d"
    result = agreement.update(hyp("a b x d"), heard_until=2.2, force_until=1.6)  # "x" disagrees but is overdue
    assert words(result.committed) == "x" and words(result.tail) == "d"


def test_committed_times_are_monotonic():
    agreement = LocalAgreement()
    bad = [Word(" a", 0.0, 0.6), Word(" b", 0.4, 0.5), Word(" c", 0.7, 0.9)]
    agreement.finish(bad)
    ends = 0.0
    for w in agreement.committed:
        assert w.start >= ends and w.end >= w.start
        ends = w.end


def test_normalize_word():
    assert normalize_word(" Fibrillation,") == normalize_word("fibrillation.") == "fibrillation"
    assert normalize_word("don't") == "don't" and normalize_word("5mg") == "5mg"


def test_span_needs_agreement_over_that_much_more_audio():
    """Passes 0.4 s apart agree on "god"; the one a second later hears "good": nothing commits until a span agrees."""
    agreement = LocalAgreement(span_s=1.0)
    assert agreement.update(hyp("I'm god so"), heard_until=1.2).committed == []
    assert agreement.update(hyp("I'm god so are"), heard_until=1.6).committed == []  # only 0.4 s apart
    assert agreement.update(hyp("I'm good so are you"), heard_until=2.0).committed == []
    result = agreement.update(hyp("I'm good so are you ready"), heard_until=2.4)  # 1.2 s after the first
    assert words(result.committed) == "I'm"  # every pass of the span agrees on "I'm" only
    result = agreement.update(hyp("I'm good so are you ready to"), heard_until=3.2)
    assert words(result.committed) == "good so are you"  # agreed since 2.0 s and by the pass before it


def test_without_span_adjacent_passes_suffice():
    agreement = LocalAgreement()
    agreement.update(hyp("I'm god so"), heard_until=1.2)
    assert words(agreement.update(hyp("I'm god so are"), heard_until=1.6).committed) == "I'm god so"
