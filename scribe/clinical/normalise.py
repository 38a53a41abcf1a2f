"""Spoken text made matchable: detokenised, contractions expanded, numbers as digits, units abbreviated.

The extractive engine, grounding and the benches all match on this form, so "five hundred
milligrams" in a transcript and "500 mg" in a note are the same words.
"""

from __future__ import annotations

import re

from scribe.clinical.numbers import spoken_numbers_to_digits

_CONTRACTIONS = [
    (r"\bcan't\b", "cannot"),
    (r"\bwon't\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"\bain't\b", "is not"),
    (r"\b(\w+)n't\b", r"\1 not"),
    (r"\bi'm\b", "i am"),
    (r"\b(i|you|we|they)'ve\b", r"\1 have"),
    (r"\b(i|you|we|they|he|she|it)'ll\b", r"\1 will"),
    (r"\b(i|you|we|they|he|she)'d\b", r"\1 would"),
    (r"\b(you|we|they)'re\b", r"\1 are"),
    (r"\b(it|that|there|what|here|he|she|who)'s\b", r"\1 is"),
    (r"\blet's\b", "let us"),
    (r"\bgonna\b", "going to"),
    (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "have to"),
    (r"\bkinda\b", "kind of"),
    (r"\bsorta\b", "sort of"),
    (r"'cause\b", "because"),
    (r"\bcuz\b", "because"),
    (r"\bgimme\b", "give me"),
    (r"\blemme\b", "let me"),
    (r"\bdunno\b", "do not know"),
    (r"\bya\b", "you"),
]
_CONTRACTIONS_RE = [(re.compile(p, re.I), r) for p, r in _CONTRACTIONS]

_UNITS = [
    (r"\bmilligrams?\b|\bmilligram\b|\bmgs\b", "mg"),
    (r"\bmicrograms?\b|\bmcgs\b", "mcg"),
    (r"\bgrams\b", "g"),
    (r"\bmilliliters?\b|\bmls\b|\bcc's\b|\bccs\b", "mL"),
    (r"\binternational units\b", "IU"),
    (r"(?<=\d) ?percent\b", "%"),
    (r"(?<=\d) %", "%"),
    (r"\bdegrees fahrenheit\b", "°F"),
    (r"(?<=\d) out of (?=\d)", "/"),
    (r"(?<=\d) plus\b", "+"),
    (r"(?<=\d) (?:over|/) (?=\d)", "/"),
    (r"\bx-rays?\b", "x-ray"),
    (r"\bkgs\b", "kg"),
    (r"(?<=\d) pounds\b", " lbs"),
]
_UNITS_RE = [(re.compile(p, re.I), r) for p, r in _UNITS]


def detokenize(text: str) -> str:
    """Undo transcript tokenisation ("do n't", "pain .", "gon na") so words read as written."""
    text = re.sub(r"\b(\w+) n't\b", r"\1n't", text)
    text = re.sub(r" '(s|re|ve|ll|d|m)\b", r"'\1", text)
    text = re.sub(r"\b(gon|wan|got) (na|ta)\b", r"\1\2", text)
    text = re.sub(r"\s+([.,?!;:%])", r"\1", text)
    text = re.sub(r"\$ (\d)", r"$\1", text)
    text = re.sub(r"(\w) - (?=year|month|week|day)", r"\1-", text)
    return re.sub(r"\s+", " ", text).strip()


def expand_contractions(text: str) -> str:
    text = text.replace("’", "'")
    for pattern, repl in _CONTRACTIONS_RE:
        text = pattern.sub(repl, text)
    return text


def units_and_numbers(text: str) -> str:
    text = spoken_numbers_to_digits(text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # "1,000" -> "1000"
    for pattern, repl in _UNITS_RE:
        text = pattern.sub(repl, text)
    return text


def normalise(text: str) -> str:
    """Text for matching: detokenised, contractions expanded, stutters collapsed, numbers as digits, lower case."""
    text = expand_contractions(detokenize(text)).lower()
    text = re.sub(r"\b(\w+)(?: \1\b)+", r"\1", text)  # "over over", "no no"
    return units_and_numbers(text)
