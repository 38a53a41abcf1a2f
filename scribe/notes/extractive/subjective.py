"""Subjective: chief complaint, history of present illness, review of systems.

The history is the patient's account in third person plus what the clinician summarises
aloud; pertinent negatives ("no fever", a "no" to "any chest pain?") go to the review of
systems as "Denies ...", never into the history as complaints.
"""

from __future__ import annotations

import re

from scribe.clinical.findings import find_medications_any, find_problems, find_symptoms
from scribe.clinical.negation import answer_polarity
from scribe.clinical.terms import CLINICAL_WORDS
from scribe.notes.extractive.qa import YesNo
from scribe.notes.extractive.reading import TranscriptReading, statement
from scribe.notes.extractive.rewrite import addressee_to_third_person, finish, note_style, strip_fillers
from scribe.notes.extractive.sections import HISTORY, asks_something, is_question
from scribe.notes.schema import Statement

_CC = re.compile(
    r"\b(?:(?:you are|you're|she is|he is|patient is|who is) (?:here|in) (?:today )?(?:for|with|because of)|"
    r"presents? (?:today )?(?:for|with)|presenting (?:today )?(?:for|with)|coming in (?:today )?(?:for|with)|"
    r"came in (?:today )?(?:for|with)|referred (?:to me )?(?:for|with)|seeing you (?:today )?(?:for|because of)|"
    r"here to see me (?:for|because of)|chief complaint (?:is|of)|here (?:today )?(?:for|because of))\s+"
    r"(?:an? |the |some |your |his |her |a follow-up (?:for|of|on) |follow-up (?:for|of|on) |evaluation of |"
    r"management of )?(.+)",
    re.I,
)
_CC_STOP = re.compile(
    r"\b(?:and i|so i|i understand|today|how are|how is|is that right|right|okay|which|that we|"
    r"but|and how|tell me|can you)\b|[.?,;]"
)
_INTRO = re.compile(r"\b(?:year[- ]old|past medical history|history of|presents|is here|who is here|referred)\b")
# Minimum clinical content (see `content_score`) for a history sentence to be kept, by speaker.
MIN_CLINICIAN_SCORE = 2
MIN_PATIENT_SCORE = 1
_SOCIAL = re.compile(
    r"\b(?:how are you|nice to (?:meet|see)|good to see|how have you been|how's it going|"
    r"how is it going|weather|weekend|vacation|thank you|thanks|bye|take care|you're welcome|"
    r"have a (?:good|great|nice)|sounds good|no problem|my name is|i'm doctor|i am doctor)\b"
)


def content_score(norm: str) -> int:
    """How clinical a sentence is: clinical words plus symptom, drug and problem mentions."""
    words = re.findall(r"[a-z0-9][a-z0-9'-]*", norm)
    score = sum(1 for w in words if w in CLINICAL_WORDS)
    score += 2 * len(find_symptoms(norm)) + 2 * len(find_medications_any(norm)) + 2 * len(find_problems(norm))
    score += len(re.findall(r"\b\d+(?:\.\d+)?\b", norm))
    return score


def chief_complaint(enc: TranscriptReading) -> list[Statement]:
    """The reason for the visit, from "here for ..." / "presents with ..." early on, or a dictation's opening line."""
    limit = max(12, len(enc.sentences) // 4)
    for i, sentence in enumerate(enc.sentences[:limit]):
        if sentence.role == "patient":
            continue
        m = _CC.search(enc.norms[i])
        if not m:
            continue
        reason = m.group(1)
        stop = _CC_STOP.search(reason)
        if stop:
            reason = reason[: stop.start()]
        words = reason.split()
        if not words or len(words) > 14:
            continue
        text = finish(addressee_to_third_person(strip_fillers(reason), enc.pronouns))
        if text:
            return [statement(enc, text, [i])]
    if enc.dictation and enc.sentences:
        norm = enc.norms[0]
        if len(norm.split()) <= 8 and not find_medications_any(norm) and not re.search(r"\d", norm):
            text = finish(strip_fillers(enc.sentences[0].text))
            if text:
                return [statement(enc, text, [0])]
    return []


def history(enc: TranscriptReading, pairs: list[YesNo], used: set[int]) -> list[Statement]:
    """History sentences in note style: the patient's own account, the clinician's summaries, yes-answers."""
    out: list[Statement] = []
    yes_by_question = {p.question: p for p in pairs if p.polarity == "yes"}
    for i, sentence in enumerate(enc.sentences):
        if i in used or enc.phases[i] != HISTORY:
            continue
        norm = enc.norms[i]
        if i in yes_by_question:
            pair = yes_by_question[i]
            if find_symptoms(pair.content) and all(t.negated for t in find_symptoms(pair.content)):
                continue
            content = re.sub(r"^(?:any|some)\s+", "", pair.content)
            content = addressee_to_third_person(strip_fillers(content), enc.pronouns)
            subject = enc.pronouns.subject
            text = finish(f"{subject} reports {content}")
            out.append(statement(enc, text, [i, pair.answer]))
            used.update((i, pair.answer))
            continue
        if sentence.role != "patient" and not enc.dictation:
            if is_question(norm, sentence.text) or asks_something(norm) or _SOCIAL.search(norm):
                continue
            if not _INTRO.search(norm) and content_score(norm) < MIN_CLINICIAN_SCORE:
                continue
        else:
            if sentence.text.rstrip().endswith("?") or _SOCIAL.search(norm):
                continue
            if answer_polarity(norm) and len(norm.split()) <= 3:
                continue
            if content_score(norm) < MIN_PATIENT_SCORE:
                continue
        symptoms = find_symptoms(norm)
        if symptoms and all(t.negated for t in symptoms):
            continue  # a pertinent negative: the review of systems reports it
        text = note_style(sentence.text, sentence.role, enc.pronouns)
        if len(text.split()) < 4:
            continue
        out.append(statement(enc, text, [i]))
        used.add(i)
    return out


def review_of_systems(enc: TranscriptReading, pairs: list[YesNo]) -> list[Statement]:
    """Pertinent positives and negatives by organ system, each citing where it was said (or asked and answered)."""
    found: dict[tuple[str, str], tuple[list[str], list[int]]] = {}

    def add(group: str, polarity: str, phrase: str, indices: list[int]) -> None:
        phrases, cited = found.setdefault((group, polarity), ([], []))
        if phrase not in phrases and phrase.rstrip("s") not in [p.rstrip("s") for p in phrases]:
            phrases.append(phrase)
        cited.extend(indices)

    for pair in pairs:
        for term in find_symptoms(pair.content):
            if term.negated:
                continue
            phrase = addressee_to_third_person(term.phrase, enc.pronouns)
            add(term.label, "denies" if pair.polarity == "no" else "reports", phrase, [pair.question, pair.answer])
    for i, sentence in enumerate(enc.sentences):
        if enc.phases[i] != HISTORY or (sentence.role != "patient" and not enc.dictation):
            continue
        if sentence.text.rstrip().endswith("?"):
            continue
        for term in find_symptoms(enc.norms[i]):
            phrase = re.sub(r"\b(?:my|your)\b", enc.pronouns.possessive, term.phrase)
            add(term.label, "denies" if term.negated else "reports", phrase, [i])
    out = []
    for (group, polarity), (phrases, cited) in sorted(found.items(), key=lambda kv: min(kv[1][1])):
        verb = "Denies" if polarity == "denies" else "Reports"
        listed = (
            phrases[0]
            if len(phrases) == 1
            else ", ".join(phrases[:-1]) + " or " * (verb == "Denies") + " and " * (verb == "Reports") + phrases[-1]
        )
        listed = re.sub(r"\s+", " ", listed)
        out.append(statement(enc, f"{group}: {verb} {listed}.", sorted(set(cited))))
    return out
