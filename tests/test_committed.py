"""CommittedWords: a stream's final words, in order, never revised; what a later pass adds beyond them."""

from scribe.streaming.committed import CommittedWords, normalize_word, words_after
from scribe.transcript import Word


def hyp(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [Word(" " + w, start + i * step, start + (i + 1) * step - 0.05) for i, w in enumerate(text.split())]


def words(ws: list[Word]) -> str:
    return " ".join(w.word.strip() for w in ws)


def test_commit_makes_every_fresh_word_final_and_never_revises():
    committed = CommittedWords()
    result = committed.commit(hyp("start metformin today"))
    assert words(result.committed) == "start metformin today" and result.tail == []
    again = committed.commit(hyp("stop metformin tomorrow now"))  # overlaps the committed words: only "now" is new
    assert words(again.committed) == "now"
    assert words(committed.words) == "start metformin today now"


def test_commit_until_keeps_the_later_words_provisional():
    committed = CommittedWords()
    result = committed.commit(hyp("a b c d"), until=1.0)
    assert words(result.committed) == "a b" and words(result.tail) == "c d"
    result = committed.commit(hyp("a b x d"), until=1.6)  # the committed "a b" stay; "x" ends by 1.6
    assert words(result.committed) == "x" and words(result.tail) == "d"


def test_fresh_reads_a_pass_only_after_the_committed_words():
    committed = CommittedWords()
    assert words(committed.fresh(hyp("a b"))) == "a b"
    committed.commit(hyp("a b"))
    assert words(committed.fresh(hyp("a b c"))) == "c"
    assert words(words_after(hyp("a b c"), 0.5)) == "b c"  # by midpoint


def test_committed_times_are_monotonic():
    committed = CommittedWords()
    committed.commit([Word(" a", 0.0, 0.6), Word(" b", 0.4, 0.5), Word(" c", 0.7, 0.9)])
    ends = 0.0
    for w in committed.words:
        assert w.start >= ends and w.end >= w.start
        ends = w.end


def test_normalize_word():
    assert normalize_word(" Fibrillation,") == normalize_word("fibrillation.") == "fibrillation"
    assert normalize_word("don't") == "don't" and normalize_word("5mg") == "5mg"
