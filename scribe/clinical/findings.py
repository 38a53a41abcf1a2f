"""Symptoms, problems and allergies found by vocabulary, each with its place in the sentence.

The vocabularies are in `terms.py`; matching is whole-word, case-insensitive and longest-first
("chest pain" before "pain", "type 2 diabetes" before "diabetes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from scribe.clinical.drugs import drug_lexicon
from scribe.clinical.medications import find_medications
from scribe.clinical.negation import is_negated
from scribe.clinical.terms import PROBLEMS, ROS_SYMPTOMS


@dataclass(frozen=True)
class Term:
    phrase: str  # as matched, lower case
    label: str  # ROS group for symptoms, display name for problems, substance for allergies
    code: str  # ICD-10-CM for problems, "" otherwise
    start: int
    end: int
    negated: bool


def _alternation(phrases: list[str]) -> re.Pattern[str]:
    ordered = sorted(set(phrases), key=len, reverse=True)
    body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.I)


@lru_cache(maxsize=1)
def _symptom_index() -> tuple[re.Pattern[str], dict[str, str]]:
    groups = {phrase: group for group, phrases in ROS_SYMPTOMS.items() for phrase in phrases}
    return _alternation(list(groups)), groups


@lru_cache(maxsize=1)
def _problem_index() -> re.Pattern[str]:
    return _alternation(list(PROBLEMS))


def find_symptoms(text: str) -> list[Term]:
    pattern, groups = _symptom_index()
    out = []
    for m in pattern.finditer(text):
        phrase = re.sub(r"\s+", " ", m.group(0).lower())
        out.append(Term(phrase, groups[phrase], "", m.start(), m.end(), is_negated(text, m.start(), m.end())))
    return out


def find_problems(text: str) -> list[Term]:
    out = []
    for m in _problem_index().finditer(text):
        phrase = re.sub(r"\s+", " ", m.group(0).lower())
        display, code = PROBLEMS[phrase]
        out.append(Term(phrase, display, code, m.start(), m.end(), is_negated(text, m.start(), m.end())))
    return out


_ALLERGENS = (
    "sulfa",
    "sulfa drugs",
    "penicillin",
    "penicillins",
    "latex",
    "peanuts",
    "peanut",
    "shellfish",
    "codeine",
    "iodine",
    "contrast",
    "contrast dye",
    "bees",
    "bee stings",
    "eggs",
    "nuts",
    "tree nuts",
    "morphine",
    "amoxicillin",
    "aspirin",
    "nsaids",
    "ibuprofen",
    "cephalosporins",
    "erythromycin",
    "tetracycline",
    "adhesive",
    "tape",
    "dust",
    "pollen",
    "cats",
    "dogs",
    "gluten",
    "milk",
    "soy",
    "fish",
    "strawberries",
    "wheat",
    "sesame",
    "mold",
    "grass",
    "ragweed",
    "seasonal allergies",
)
_NKDA = re.compile(
    r"\b(?:no known (?:drug |medication )?allergies|nkda|not allergic to (?:any|anything)|"
    r"no (?:drug |medication )?allergies|don't have any allergies|do not have any allergies|"
    r"no allergies to (?:any )?medications?)\b",
    re.I,
)


@lru_cache(maxsize=1)
def _allergen_pattern() -> re.Pattern[str]:
    names = list(_ALLERGENS) + [n for n in drug_lexicon()]
    body = _alternation(names).pattern
    return re.compile(
        rf"\ballergic (?:reaction )?to (?:the |a |an |any )?({body})|({body})\s+allerg(?:y|ies)\b|"
        rf"\ballerg(?:y|ies) to (?:the |a |an )?({body})",
        re.I,
    )


def find_allergies(text: str) -> list[Term]:
    """Substances the patient is allergic to, or one Term labelled "NKDA" for "no known allergies"."""
    out = []
    nkda = _NKDA.search(text)
    if nkda:
        out.append(Term(nkda.group(0).lower(), "NKDA", "", nkda.start(), nkda.end(), False))
        return out
    for m in _allergen_pattern().finditer(text):
        substance = next(g for g in m.groups() if g)
        negated = is_negated(text, m.start(), m.end())
        out.append(Term(substance.lower(), substance.lower(), "", m.start(), m.end(), negated))
    return out


def find_medications_any(text: str) -> list[str]:
    """Drug names mentioned in `text` (no attributes): a cheap test for medication talk."""
    return [m.canonical for m in find_medications(text)]
