"""Critical terms: the words of a transcript where a mishearing harms a patient, counted as units.

A medication counts as one unit of drug + dose + unit + frequency ("naproxen 500 mg twice
daily"): "naproxen 100 mg daily" gets none of it right, however few words differ. Allergies
count as allergen units ("allergy aspirin") and negations as the trigger with the words it
negates ("no chest pain"): a dropped "no" turns a pertinent negative into a finding. Both
sides go through the note engines' reading (`scribe.clinical`: numbers as digits, units, drug
lexicon), so "five hundred milligrams" and "500mg" are the same unit.
"""

from __future__ import annotations

import re
from collections import Counter

from scribe.clinical.drugs import drug_lexicon
from scribe.clinical.medications import find_medications
from scribe.clinical.negation import negated_scopes
from scribe.clinical.normalise import normalise

NEGATED_WORDS = 2  # words after a negation trigger that make its unit: "no chest pain", "denies fever"
_ALLERGY = re.compile(r"\ballerg(?:ic|y|ies) (?:reaction )?to (?:the |a |an |any )?([a-z][a-z-]*(?: [a-z]+)?)")
_SENTENCES = re.compile(r"(?<=[.?!])\s+")


def _allergen(phrase: str) -> str:
    """The allergen as the lexicon names it ("penicillin"), else its first word ("sulfa drugs" -> "sulfa")."""
    lexicon = drug_lexicon()
    return lexicon.get(phrase) or lexicon.get(phrase.split()[0]) or phrase.split()[0]


def critical_terms(text: str) -> Counter[str]:
    """The critical units `text` says, with their counts."""
    units: Counter[str] = Counter()
    for sentence in _SENTENCES.split(text):
        norm = normalise(sentence)
        for med in find_medications(norm):
            if not med.negated:
                units[" ".join(p for p in ("medication", med.canonical, med.dose, med.frequency) if p)] += 1
        for match in _ALLERGY.finditer(norm):
            units[f"allergy {_allergen(match.group(1))}"] += 1
        for start, end in negated_scopes(norm):
            words = re.findall(r"[a-z0-9']+", norm[start:end])
            if len(words) > 1:
                units["negation " + " ".join(words[: 1 + NEGATED_WORDS])] += 1
    return units


def critical_recall(reference: str, hypothesis: str) -> tuple[int, int]:
    """(found, spoken): how many of the reference's critical units the hypothesis says the same way."""
    spoken, heard = critical_terms(reference), critical_terms(hypothesis)
    return sum((spoken & heard).values()), sum(spoken.values())
