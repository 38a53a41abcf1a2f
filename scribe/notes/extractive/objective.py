"""Objective: vital signs, examination findings, results and imaging as the clinician states them."""

from __future__ import annotations

import re

from scribe.clinical.vitals import find_vitals
from scribe.notes.extractive.reading import TranscriptReading, statement
from scribe.notes.extractive.rewrite import note_style
from scribe.notes.extractive.sections import (
    EXAM,
    EXAM_FINDING,
    EXAM_INSTRUCTION,
    IMAGING_CUE,
    PLAN,
    RESULT_CUE,
    RESULTS,
    is_question,
)
from scribe.notes.extractive.subjective import content_score
from scribe.notes.schema import Statement

_FINDING_VERBS = [
    (
        re.compile(
            r"\b(?:i|we) (?:do not|did not|cannot) (?:really )?(?:appreciate|hear|see|feel|notice|note|find)"
            r"(?: any)?\b",
            re.I,
        ),
        "no",
    ),
    (re.compile(r"\b(?:i|we) (?:do |did )?(?:also )?(?:appreciate|hear|see|feel|notice|note|find)\b", re.I), ""),
    (re.compile(r"\bthere (?:is|are|was|were) no\b", re.I), "no"),
    (re.compile(r"\bon (?:your|her|his|the) (?:physical )?exam(?:ination)?,?\b", re.I), ""),
]
_PAST_RESULT = re.compile(
    r"\b(?:showed|shows|revealed|reveals|demonstrat\w+|came back|was|were|is|are|looked|looks|"
    r"consistent with|no evidence|normal|abnormal|elevated|high|low)\b"
)
_STRONG_RESULT = re.compile(
    r"\b(?:reviewed|review|looked at|look at|looking at) (?:the|your|her|his) "
    r"(?:x-?rays?|mri|ct|scan|ultrasound|labs?|lab work|blood work|results?|echo\w*|ekg|"
    r"imaging)\b|"
    r"\b(?:x-?ray|mri|ct|scan|ultrasound|echo\w*|ekg|labs?|lab work|blood work|a1c|"
    r"urinalysis|biopsy|results?|levels?|test)\b.{0,40}\b(?:showed|shows|revealed|reveals|"
    r"demonstrat\w+|came back|was (?:normal|abnormal|elevated|negative|positive|high|low))\b"
)
_LAB_VALUE = re.compile(
    r"\b(?:a1c|hemoglobin|tsh|psa|ldl|hdl|cholesterol|triglycerides|creatinine|gfr|egfr|potassium|"
    r"sodium|glucose|alt|ast|inr|bnp|troponin|vitamin d|b12|ferritin|platelets|white count|wbc|"
    r"ejection fraction)\b[^.]{0,30}?\d"
)


def vitals(enc: TranscriptReading) -> list[Statement]:
    out: list[Statement] = []
    seen: set[tuple[str, str]] = set()
    for i, norm in enumerate(enc.norms):
        for vital in find_vitals(norm):
            if (vital.name, vital.value) in seen:
                continue
            seen.add((vital.name, vital.value))
            out.append(statement(enc, vital.text(), [i]))
    return out


def _finding_text(enc: TranscriptReading, i: int) -> str:
    text = enc.sentences[i].text
    for pattern, repl in _FINDING_VERBS:
        text = pattern.sub(repl, text)
    return note_style(text, enc.sentences[i].role, enc.pronouns)


def exam(enc: TranscriptReading, used: set[int]) -> list[Statement]:
    """The clinician's findings during the examination; instructions to the patient are left out."""
    out: list[Statement] = []
    for i, sentence in enumerate(enc.sentences):
        if i in used or enc.phases[i] != EXAM or sentence.role == "patient":
            continue
        norm = enc.norms[i]
        if is_question(norm, sentence.text) or EXAM_INSTRUCTION.match(
            re.sub(
                r"^(?:okay|so|and|now|alright|um|"
                r"all right)[ ,]+",
                "",
                norm,
            )
        ):
            continue
        if not EXAM_FINDING.search(norm) or find_vitals(norm) and len(norm.split()) < 14:
            continue
        text = _finding_text(enc, i)
        if len(text.split()) >= 3:
            out.append(statement(enc, text, [i]))
            used.add(i)
    return out


def results(enc: TranscriptReading, used: set[int]) -> tuple[list[Statement], list[Statement]]:
    """(results, imaging): what tests showed, from the results review or any clear "X showed Y" statement."""
    lab: list[Statement] = []
    imaging: list[Statement] = []
    for i, sentence in enumerate(enc.sentences):
        if i in used or sentence.role == "patient":
            continue
        norm = enc.norms[i]
        if is_question(norm, sentence.text):
            continue
        in_review = enc.phases[i] == RESULTS and RESULT_CUE.search(norm) and _PAST_RESULT.search(norm)
        stated = _STRONG_RESULT.search(norm) and enc.phases[i] in (RESULTS, EXAM, PLAN)
        dictated = enc.dictation and _LAB_VALUE.search(norm)
        if not (in_review or stated or dictated) or content_score(norm) < 2:
            continue
        text = note_style(sentence.text, sentence.role, enc.pronouns)
        if len(text.split()) < 2:
            continue
        (imaging if IMAGING_CUE.search(norm) else lab).append(statement(enc, text, [i]))
        used.add(i)
    return lab, imaging
