"""Word error rate as the Whisper papers count it: both sides normalised (case, punctuation, numbers, units)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import jiwer


@cache
def _normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    normalizer: Callable[[str], str] = EnglishTextNormalizer()  # an untyped library's str -> str callable
    return normalizer


# Dose units written out or abbreviated are one word, as Whisper's normaliser already makes "percent" and "%" one:
# the same decoder writes "5mg" on one pass and "5 milligrams" on the next, and neither is a misheard word.
_UNIT_SPELLINGS = {
    "milligram": "mg",
    "milligrams": "mg",
    "mgs": "mg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "mcgs": "mcg",
    "milliliter": "ml",
    "milliliters": "ml",
    "mls": "ml",
    "gram": "g",
    "grams": "g",
    "kilogram": "kg",
    "kilograms": "kg",
    "kgs": "kg",
}


def normalize(text: str) -> str:
    """Whisper's English normaliser (lower case, no punctuation, spelled numbers as digits, US spelling), units
    abbreviated."""
    return " ".join(_UNIT_SPELLINGS.get(word, word) for word in _normalizer()(text).split())


@dataclass(frozen=True)
class WerCounts:
    errors: int
    reference_words: int

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words if self.reference_words else 0.0

    def __add__(self, other: WerCounts) -> WerCounts:
        """Counts of several transcripts pooled: their WER is over all their reference words, not a mean of rates."""
        return WerCounts(self.errors + other.errors, self.reference_words + other.reference_words)


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
