"""Negation scope in the spirit of ConText: a trigger negates what follows it up to a clause end.

"denies chest pain, shortness of breath or swelling" negates all three; "no fever but a
cough" negates only the fever. A reply opening with "no" to "any chest pain?" denies it too
(`answer_polarity`). The note engine uses these to keep negated findings out of the present
complaints and write them as pertinent negatives; grounding, to check a statement's negation
against what it cites.
"""

from __future__ import annotations

import re

_PRE_TRIGGERS = re.compile(
    r"\b(?:no|nope|nah|not|denies|denied|deny|denying|without|never|none|nor|negative for|free of|absence of|"
    r"no longer|neither|nothing|nobody|n't|cannot|haven't|hasn't|hadn't|don't|doesn't|didn't|isn't|wasn't|"
    r"aren't|weren't|rule out|ruled out)\b",
    re.I,
)
_TERMINATORS = re.compile(
    r"\b(?:but|however|although|though|except|aside from|apart from|which|who|yet|"
    r"still|now|because|since|although|whereas|other than|besides)\b|[.;?!]",
    re.I,
)
_POST_NEGATIONS = re.compile(
    r"\b(?:is|was|were|are|came back|has been|have been) (?:negative|normal|unremarkable|"
    r"ruled out|absent|resolved|gone)\b",
    re.I,
)
MAX_SCOPE_WORDS = 12
# How a reply to a yes/no question opens.
_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|uh-huh|mm-hmm|correct|right|i do|i have|i am|i did|sometimes|a little|"
    r"definitely|absolutely|sure|i think so|probably|occasionally|a bit|once in a while|every now)\b"
)
_NO = re.compile(
    r"^(?:no|nope|nah|not really|never|none|nothing|i do not|i have not|not that i|negative|"
    r"i did not|i am not|not at all|not since)\b"
)


def negated_scopes(text: str) -> list[tuple[int, int]]:
    """Character ranges of `text` that fall under a negation trigger."""
    scopes: list[tuple[int, int]] = []
    for trigger in _PRE_TRIGGERS.finditer(text):
        end = len(text)
        stop = _TERMINATORS.search(text, trigger.end())
        if stop:
            end = stop.start()
        words = list(re.finditer(r"\S+", text[trigger.end() : end]))
        if len(words) > MAX_SCOPE_WORDS:
            end = trigger.end() + words[MAX_SCOPE_WORDS - 1].end()
        scopes.append((trigger.start(), end))
    return scopes


def is_negated(text: str, start: int, end: int) -> bool:
    """True when the term at text[start:end] sits inside a negation scope, or is followed by "was negative"."""
    for a, b in negated_scopes(text):
        if a <= start and end <= b:
            return True
    after = text[end : end + 40]
    return bool(_POST_NEGATIONS.match(after.lstrip(" ,")))


def negation_words(text: str) -> list[tuple[int, int]]:
    """Character ranges of the words of `text` that negate ("no", "denies", "was negative")."""
    return [(m.start(), m.end()) for p in (_PRE_TRIGGERS, _POST_NEGATIONS) for m in p.finditer(text)]


def has_negation(text: str) -> bool:
    return bool(_PRE_TRIGGERS.search(text) or _POST_NEGATIONS.search(text))


def answer_polarity(norm: str) -> str | None:
    """The polarity of a normalised reply: "yes" ("yeah", "i do"), "no" ("nope", "not really"), or None."""
    text = norm.lstrip(" ,.")
    if _NO.match(text):
        return "no"
    if _YES.match(text):
        return "yes"
    return None
