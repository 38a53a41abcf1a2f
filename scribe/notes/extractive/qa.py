"""A clinician's yes/no question and the patient's answer, read together as one finding.

"[doctor] any chest pain or shortness of breath? [patient] no" is a pertinent negative;
"[doctor] do you wake up at night with it? [patient] yeah" is history. Both sentences are
cited, so the reviewer sees the question and the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scribe.clinical.negation import answer_polarity
from scribe.notes.extractive.reading import TranscriptReading
from scribe.notes.extractive.sections import is_question

_PREFIX = re.compile(
    r"^(?:(?:and|so|now|okay|um|uh|also|but|just|any other) )*"
    r"(?:do you (?:ever )?(?:have|get|feel|notice|experience|take|drink|smoke|use)|"
    r"are you (?:having|experiencing|getting|feeling|noticing|taking|still having)|"
    r"have you (?:ever )?(?:had|noticed|been having|experienced|felt|been|tried|taken|seen|gotten)|"
    r"did you (?:have|notice|get|feel|experience|take|try|hit|injure|hurt)|"
    r"is there (?:any )?|are there (?:any )?|any history of|how about|what about|anything like|"
    r"any (?:other )?)\s*"
)


@dataclass(frozen=True)
class YesNo:
    question: int  # sentence index
    answer: int
    polarity: str  # "yes" | "no"
    content: str  # the asked-about content, normalised ("chest pain or shortness of breath")
    verb: str  # the verb of the question ("have", "take") for the rewritten statement


_ALTERNATIVES = re.compile(r"\s*(?:,|\bor\b)\s*")
_VAGUE = {"your", "recently", "lately", "anything", "something", "other", "like", "that", "there", "since"}


def _answered_part(content: str, answer: str) -> str:
    """The alternatives of "any X or Y?" that a yes-answer names itself ("a little weight gain" → X), else all.

    A yes to a list confirms only what the patient picks out; the rest was asked, not reported.
    """
    options = [o for o in _ALTERNATIVES.split(content) if o]
    if len(options) < 2:
        return content
    said = set(re.findall(r"[a-z]+", answer))
    named = [o for o in options if {w for w in re.findall(r"[a-z]{4,}", o) if w not in _VAGUE} & said]
    return " or ".join(named) if named else content


def yes_no_pairs(enc: TranscriptReading) -> list[YesNo]:
    """Every clinician yes/no question that is the last sentence of its turn and gets a yes or a no."""
    pairs: list[YesNo] = []
    for i, sentence in enumerate(enc.sentences):
        if sentence.role == "patient" or enc.dictation or not enc.is_last_of_turn(i):
            continue
        norm = enc.norms[i]
        if not is_question(norm, sentence.text):
            continue
        reply = enc.next_turn(i)
        if not reply or enc.sentences[reply[0]].role != "patient":
            continue
        polarity = answer_polarity(enc.norms[reply[0]])
        if polarity is None:
            continue
        stripped = re.sub(r"[?.!,]+$", "", norm).strip()
        m = _PREFIX.match(stripped)
        if not m or m.end() == 0:
            continue
        content = stripped[m.end() :].strip(" ,")
        verb_match = re.search(
            r"\b(have|get|feel|notice|experience|take|drink|smoke|use|had|noticed|tried|taken|"
            r"been having|experienced|felt)\s*$",
            stripped[: m.end()],
        )
        verb = verb_match.group(1) if verb_match else ""
        if not content or len(content.split()) > 16:
            continue
        if polarity == "yes":
            content = _answered_part(content, enc.norms[reply[0]])
        pairs.append(YesNo(i, reply[0], polarity, content, verb))
    return pairs
