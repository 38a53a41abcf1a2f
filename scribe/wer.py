"""Word error rate as the Whisper papers count it: both sides normalised (case, punctuation, numbers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import jiwer


@cache
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normaliser: lower case, no punctuation, spelled numbers as digits, US spelling."""
    return _normalizer()(text)


@dataclass(frozen=True)
class WerCounts:
    errors: int
    reference_words: int

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words if self.reference_words else 0.0


def word_errors(reference: str, hypothesis: str) -> WerCounts:
    """Substitutions + deletions + insertions against the normalised reference."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_words = len(ref.split())
    if not ref_words:
        return WerCounts(len(hyp.split()), 0)
    if not hyp.split():
        return WerCounts(ref_words, ref_words)
    out = jiwer.process_words(ref, hyp)
    return WerCounts(out.substitutions + out.deletions + out.insertions, ref_words)


def contains_term(text: str, term: str) -> bool:
    """Whether `term` occurs as whole words in `text`, both normalised."""
    norm_term = normalize(term)
    if not norm_term:
        return False
    return re.search(rf"(?<!\S){re.escape(norm_term)}(?!\S)", normalize(text)) is not None


def term_recall(reference: str, hypothesis: str, terms: list[str]) -> tuple[int, int]:
    """(found, spoken): of the terms present in the reference, how many the hypothesis spells right."""
    spoken = [t for t in terms if contains_term(reference, t)]
    return sum(contains_term(hypothesis, t) for t in spoken), len(spoken)
