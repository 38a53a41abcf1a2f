"""Words the recogniser was unsure of, where a mishearing changes the note: drugs, numbers, units, frequencies,
allergies and negations in a statement's evidence, flagged for the reviewer to listen to."""

from __future__ import annotations

import re

from scribe.clinical.drugs import drug_name_pattern
from scribe.clinical.findings import find_allergies
from scribe.clinical.medications import DOSE_UNITS, frequency_spans
from scribe.clinical.negation import negation_words
from scribe.clinical.normalise import normalise
from scribe.clinical.numbers import NUMBER_WORDS
from scribe.notes.schema import LowConfidenceWord
from scribe.transcript import Segment, word_spans

LOW_CONFIDENCE = 0.5
"""Word probability (Whisper's word probability, MedASR's CTC posterior) below which a critical word is flagged:
under even odds the recogniser's best guess is more likely wrong than right, and misheard doses cluster there."""

_UNIT = re.compile(rf"(?:{DOSE_UNITS})", re.I)
_ALLERGY_WORD = re.compile(r"\ballerg\w*", re.I)


def _critical_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges of a segment's text naming a drug, a frequency, an allergy or a negation."""
    pattern, _ = drug_name_pattern()
    ranges = [(m.start(), m.end()) for m in pattern.finditer(text)]
    ranges += frequency_spans(text) + negation_words(text)
    ranges += [(t.start, t.end) for t in find_allergies(text.lower())]
    ranges += [(m.start(), m.end()) for m in _ALLERGY_WORD.finditer(text)]
    return ranges


def _quantity_word(token: str) -> bool:
    """A number (digits or a number word) or a dose unit ("milligrams" as well as "mg")."""
    word = token.strip(".,;:!?()\"'").lower()
    if any(c.isdigit() for c in word) or any(part in NUMBER_WORDS for part in word.split("-")):
        return True
    return bool(word) and bool(_UNIT.fullmatch(normalise(word).strip(".")))


def low_confidence_words(
    segment: Segment, start_char: int, end_char: int, threshold: float = LOW_CONFIDENCE
) -> list[LowConfidenceWord]:
    """Critical words within characters start_char:end_char of a segment recognised below `threshold`."""
    unsure = [
        (w.probability, a, b)
        for w, a, b in word_spans(segment)
        if w.probability is not None and w.probability < threshold and a < end_char and b > start_char
    ]
    if not unsure:
        return []
    ranges = _critical_ranges(segment.text)
    out = []
    for word_probability, a, b in unsure:
        if _quantity_word(segment.text[a:b]) or any(x < b and a < y for x, y in ranges):
            probability = round(max(0.0, float(word_probability)), 3)
            out.append(
                LowConfidenceWord(
                    text=segment.text[a:b], probability=probability, segment_id=segment.id, start_char=a, end_char=b
                )
            )
    return out
