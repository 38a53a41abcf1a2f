"""The transcript as the engine reads it: sentences, their normalised text, phase and speaker.

Built once per draft; every section builder reads from it and cites its sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from scribe.clinical.normalise import normalise
from scribe.notes.extractive.rewrite import Pronouns
from scribe.notes.extractive.sections import ASSISTANT_COMMAND, ASSISTANT_ORDER, encounter_phases, is_question
from scribe.notes.extractive.sentences import Sentence, split_sentences
from scribe.notes.schema import SegmentEvidence, Statement
from scribe.records import PatientContext
from scribe.transcript import Transcript

_FEMALE_STRONG = re.compile(r"\b(?:year[- ]old (?:female|woman|lady|girl)|mrs\.? [a-z]+|ms\. [a-z]+)\b")
_MALE_STRONG = re.compile(r"\b(?:year[- ]old (?:male|man|gentleman|boy|guy)|mr\.? [a-z]+)\b")
_FEMALE = re.compile(r"\b(?:she is|she has|she was|her (?:pain|symptoms|history|husband))\b")
_MALE = re.compile(r"\b(?:he is|he has|he was|his (?:pain|symptoms|history|wife))\b")


@dataclass
class TranscriptReading:
    """One draft's reading of the transcript, shared by every section builder."""

    sentences: list[Sentence]
    norms: list[str]  # detokenised, contractions expanded, numbers as digits, lower case: for matching
    phases: list[str]
    pronouns: Pronouns
    dictation: bool  # one clinician speaking (no patient turns)

    @classmethod
    def read(cls, transcript: Transcript, context: PatientContext | None) -> TranscriptReading:
        sentences = split_sentences(transcript)
        norms = [normalise(s.text) for s in sentences]
        keep = [
            i
            for i, s in enumerate(sentences)
            if not ASSISTANT_COMMAND.search(norms[i]) or ASSISTANT_ORDER.search(norms[i])
        ]
        sentences = [sentences[i] for i in keep]
        norms = [norms[i] for i in keep]
        if sentences and all(s.role == "unknown" for s in sentences) and _sounds_like_conversation(sentences, norms):
            sentences = _guess_roles(sentences, norms)
        dictation = not any(s.role == "patient" for s in sentences)
        gender = _gender(sentences, norms, context)
        return cls(sentences, norms, encounter_phases(sentences, norms), Pronouns.for_gender(gender), dictation)

    def evidence(self, *indices: int) -> list[SegmentEvidence]:
        """Character spans of the given sentences, each once, in transcript order."""
        out: list[SegmentEvidence] = []
        for i in sorted(set(indices)):
            s = self.sentences[i]
            out.append(SegmentEvidence(segment_id=s.segment_id, start_char=s.start, end_char=s.end))
        return out

    def next_turn(self, i: int) -> list[int]:
        """Sentence indices of the turn right after sentence i's turn, if another speaker said it."""
        turn = self.sentences[i].turn
        j = i + 1
        while j < len(self.sentences) and self.sentences[j].turn == turn:
            j += 1
        if j >= len(self.sentences) or self.sentences[j].role == self.sentences[i].role:
            return []
        nxt = self.sentences[j].turn
        out = []
        while j < len(self.sentences) and self.sentences[j].turn == nxt:
            out.append(j)
            j += 1
        return out

    def is_last_of_turn(self, i: int) -> bool:
        return i + 1 >= len(self.sentences) or self.sentences[i + 1].turn != self.sentences[i].turn


_FIRST_PERSON = re.compile(r"\b(?:i|my|me|myself)\b")
_CLINICIAN_VOICE = re.compile(
    r"\b(?:prescribe|order|examine|exam|we will|let me|let us|i want you|i would like you|"
    r"i recommend|your|you|you are|diagnosis|follow up)\b"
)


def _sounds_like_conversation(sentences: list[Sentence], norms: list[str]) -> bool:
    """An unlabelled transcript with questions and first-person answers: a visit, not a dictation."""
    questions = sum(1 for s, n in zip(sentences, norms, strict=True) if is_question(n, s.text))
    first_person = sum(1 for n in norms if _FIRST_PERSON.search(n) and not _CLINICIAN_VOICE.search(n))
    return questions >= 3 and first_person >= 3 and questions + first_person >= len(sentences) // 5


def _guess_roles(sentences: list[Sentence], norms: list[str]) -> list[Sentence]:
    """Without speaker labels: first-person talk without a clinician's words, or the reply to a question in the
    segment before, is the patient's; everything else the clinician's."""
    out: list[Sentence] = []
    for i, (sentence, norm) in enumerate(zip(sentences, norms, strict=True)):
        asked = i > 0 and sentences[i - 1].turn != sentence.turn and is_question(norms[i - 1], sentences[i - 1].text)
        own = bool(_FIRST_PERSON.search(norm)) or asked and not is_question(norm, sentence.text)
        patient = own and not _CLINICIAN_VOICE.search(norm)
        if out and out[-1].turn == sentence.turn:
            patient = out[-1].role == "patient"  # one segment, one speaker
        out.append(replace(sentence, role="patient" if patient else "clinician"))
    return out


def _gender(sentences: list[Sentence], norms: list[str], context: PatientContext | None) -> str | None:
    """The patient's gender from the records, else from how the clinician refers to the patient."""
    if context is not None and context.gender in ("female", "male"):
        return context.gender
    female = male = 0
    for sentence, norm in zip(sentences, norms, strict=True):
        if sentence.role == "patient":
            continue
        female += 5 * len(_FEMALE_STRONG.findall(norm)) + len(_FEMALE.findall(norm))
        male += 5 * len(_MALE_STRONG.findall(norm)) + len(_MALE.findall(norm))
    if female > male:
        return "female"
    if male > female:
        return "male"
    return None


def statement(
    enc: TranscriptReading,
    text: str,
    indices: list[int] | tuple[int, ...],
    *,
    dose: str | None = None,
    route: str | None = None,
    frequency: str | None = None,
) -> Statement:
    """A supported statement citing the given sentences; a medication order also carries its dose, route and
    frequency."""
    return Statement(
        text=text,
        support="supported",
        evidence=list(enc.evidence(*indices)),
        dose=dose,
        route=route,
        frequency=frequency,
    )
