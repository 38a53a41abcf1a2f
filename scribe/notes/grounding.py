"""The grounding check: every statement of every engine is held against the evidence it cites.

A statement is `supported` only when its cited transcript spans (and prior records) contain
its numbers, its drug names, its symptoms and problems, and agree with its negation. Anything
else becomes `unsupported` with a `reason` the reviewer sees; evidence that points nowhere
(an unknown segment, record or attachment) is dropped first. Statements that cite only an
image stay `review`: no text can confirm what a picture shows. A statement whose drug, dose or
frequency disagrees with the patient's records, or that orders a drug they are allergic to, is
`conflict` (never `supported`) and carries both values in `conflicts`. Critical words of the
evidence the recogniser was unsure of are listed in `low_confidence`. Engines never have the last word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from scribe.clinical.drugs import canonical_drug, drug_name_pattern
from scribe.clinical.findings import find_problems, find_symptoms
from scribe.clinical.negation import answer_polarity, has_negation
from scribe.clinical.normalise import normalise
from scribe.notes.confidence import low_confidence_words
from scribe.notes.inputs import NoteInput
from scribe.notes.prompt import record_facts
from scribe.notes.reconcile import record_conflicts
from scribe.notes.schema import (
    AttachmentEvidence,
    Evidence,
    LowConfidenceWord,
    RecordEvidence,
    SegmentEvidence,
    SOAPNote,
    Statement,
    Support,
)
from scribe.transcript import Segment

_NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?(?![\d])")
_CONTENT_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_STOP = {
    "that",
    "this",
    "with",
    "from",
    "have",
    "has",
    "been",
    "were",
    "they",
    "their",
    "them",
    "there",
    "then",
    "than",
    "what",
    "when",
    "will",
    "would",
    "about",
    "also",
    "some",
    "your",
    "yours",
    "patient",
    "reports",
    "denies",
    "states",
    "notes",
    "does",
    "into",
    "very",
    "just",
    "like",
    "know",
    "okay",
    "over",
    "after",
}


@dataclass(frozen=True)
class Verdict:
    support: Support
    reason: str | None = None


def _numbers(text: str) -> set[str]:
    """Numbers as written in normalised text, "98.60" and "98.6" alike; "0.5" and ".5" alike."""
    out = set()
    for m in _NUMBER.finditer(text):
        value = m.group(0)
        if "." in value:
            value = value.rstrip("0").rstrip(".") or "0"
        out.add(value.lstrip("0") or "0")
    return out


@lru_cache(maxsize=4096)
def _drugs(text: str) -> frozenset[str]:
    """Generic names of every lexicon drug named in normalised text, whatever the context (allergen or order)."""
    pattern, lexicon = drug_name_pattern()
    names = set()
    for m in pattern.finditer(text):
        name = re.sub(r"[\s-]+", " ", m.group(0).lower())
        names.add(canonical_drug(lexicon.get(name) or lexicon.get(name.replace(" ", "-")) or name))
    return frozenset(names)


_POSSESSIVE = re.compile(r"\b(?:my|your|his|her|their|our)\b")


def _terms(text: str) -> list[tuple[str, bool]]:
    """(symptom phrase or problem label, negated) for every vocabulary term in normalised text.

    Possessives are one word: "swelling in your legs" asked is "swelling in her legs" noted.
    """
    out = [(_POSSESSIVE.sub("one's", t.phrase), t.negated) for t in find_symptoms(text)]
    out += [(t.label.lower(), t.negated) for t in find_problems(text)]
    return out


def _words(text: str) -> set[str]:
    return {w for w in _CONTENT_WORD.findall(text) if w not in _STOP}


def locate_span(segment: Segment, statement_text: str) -> tuple[int, int]:
    """The part of a segment that best backs a statement: the run of its sentences sharing the most words.

    LLM engines cite whole segments; a span lets the reviewer's link land on the words that matter.
    """
    text = segment.text
    pieces = [(m.start(), m.end()) for m in re.finditer(r"[^.?!;]+[.?!;]*", text) if m.group(0).strip()]
    if not pieces:
        return 0, len(text)
    wanted = _words(normalise(statement_text)) | _numbers(normalise(statement_text))
    scores = []
    for a, b in pieces:
        piece = normalise(text[a:b])
        scores.append(len(wanted & (_words(piece) | _numbers(piece))))
    if not any(scores):
        return 0, len(text)
    hit = [i for i, s in enumerate(scores) if s]
    a, b = pieces[hit[0]][0], pieces[hit[-1]][1]
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


class Grounder:
    """Holds the transcript, records and attachments of one note input; judges statements one by one."""

    def __init__(self, note_input: NoteInput) -> None:
        self.segments = {s.id: s for s in note_input.transcript.segments}
        self.records = {f.resource_id: f.text for f in record_facts(note_input.context)}
        self.attachments = {a.id: a for a in note_input.attachments}
        self.context = note_input.context

    def _valid(self, statement: Statement) -> list[Evidence]:
        kept: list[Evidence] = []
        for e in statement.evidence:
            if isinstance(e, SegmentEvidence):
                segment = self.segments.get(e.segment_id)
                if segment is None:
                    continue
                if not (0 <= e.start_char < e.end_char <= len(segment.text)):
                    a, b = locate_span(segment, statement.text)
                    e = SegmentEvidence(segment_id=e.segment_id, start_char=a, end_char=b)
            elif isinstance(e, RecordEvidence):
                if e.record not in self.records:
                    continue
            elif isinstance(e, AttachmentEvidence) and e.attachment not in self.attachments:
                continue
            if e not in kept:
                kept.append(e)
        return kept

    def _pieces(self, evidence: list[Evidence]) -> list[str]:
        parts = []
        for e in evidence:
            if isinstance(e, SegmentEvidence):
                parts.append(self.segments[e.segment_id].text[e.start_char : e.end_char])
            elif isinstance(e, RecordEvidence):
                parts.append(self.records[e.record])
            else:
                parts.append(self.attachments[e.attachment].label())
        return [normalise(p) for p in parts]

    def evidence_text(self, evidence: list[Evidence]) -> str:
        return " . ".join(self._pieces(evidence))

    def judge(self, statement: Statement) -> Verdict:
        """The verdict for one statement (its evidence already validated)."""
        evidence = statement.evidence
        if not evidence:
            return Verdict("unsupported", "no evidence")
        spoken: list[Evidence] = [e for e in evidence if isinstance(e, SegmentEvidence)]
        recorded: list[Evidence] = [e for e in evidence if isinstance(e, RecordEvidence)]
        if not spoken and not recorded:
            return Verdict("review", "cites an image only: confirm against the image")
        claim = normalise(statement.text)
        pieces = self._pieces(spoken + recorded)
        source = " . ".join(pieces)
        missing = sorted(_numbers(claim) - _numbers(source), key=lambda n: float(n))
        if missing:
            return Verdict("unsupported", f"number {missing[0]} is not in the evidence")
        drugs = sorted(_drugs(claim) - _drugs(source))
        if drugs:
            return Verdict("unsupported", f"{drugs[0]} is not in the evidence")
        reason = self._negation_problem(claim, pieces)
        if reason:
            return Verdict("unsupported", reason)
        if not spoken:
            return Verdict("from_records")
        return Verdict("supported")

    @staticmethod
    def _negation_problem(claim: str, pieces: list[str]) -> str | None:
        """A present finding the evidence only negates, a denied one the evidence never negates, or one not there.

        A cited question answered by a cited "no" negates what it asked about.
        """
        found: dict[str, list[bool]] = {}
        for k, piece in enumerate(pieces):
            denied = piece.endswith("?") and k + 1 < len(pieces) and answer_polarity(pieces[k + 1]) == "no"
            for term, negated in _terms(piece):
                found.setdefault(term, []).append(negated or denied)
        source = " . ".join(pieces)
        for term, negated in _terms(claim):
            polarities = found.get(term)
            if polarities is None:
                return f"{term} is not in the evidence"
            if not negated and all(polarities):
                return f"the evidence negates {term}"
            if negated and not any(polarities) and not has_negation(source):
                return f"the evidence does not negate {term}"
        return None

    def low_confidence(self, evidence: list[Evidence]) -> list[LowConfidenceWord]:
        """Critical words of the cited spans the recogniser was unsure of, each once."""
        found: list[LowConfidenceWord] = []
        for e in evidence:
            if isinstance(e, SegmentEvidence):
                found += [
                    w
                    for w in low_confidence_words(self.segments[e.segment_id], e.start_char, e.end_char)
                    if w not in found
                ]
        return found

    def ground(self, statement: Statement, section: str | None = None) -> None:
        """Set the statement's verdict, `reason`, `conflicts` and `low_confidence`; `section` is its dotted path."""
        engine_said = statement.support
        statement.evidence = self._valid(statement)
        verdict = self.judge(statement)
        if (
            verdict.support == "supported"
            and engine_said == "review"
            and any(isinstance(e, AttachmentEvidence) for e in statement.evidence)
        ):
            verdict = Verdict("review", "describes an image: confirm against the image")
        spoken: list[Evidence] = [e for e in statement.evidence if isinstance(e, SegmentEvidence)]
        conflicts = record_conflicts(
            statement, self._pieces(spoken), self.context, orders=section in ("plan", "medications")
        )
        if conflicts and verdict.support != "unsupported":
            verdict = Verdict(
                "conflict", "; ".join(f"{c.field}: said {c.said}, records {c.records}" for c in conflicts)
            )
        statement.support = verdict.support
        statement.conflicts = conflicts or None
        statement.low_confidence = self.low_confidence(statement.evidence) or None
        # `reason` is no declared field but an extra one (Statement allows extras), kept in `model_extra`
        extra = statement.model_extra
        assert extra is not None  # not None: Statement's config has extra="allow"
        if verdict.reason and verdict.support != "supported":
            extra["reason"] = verdict.reason
        elif extra.get("reason") is not None:
            extra["reason"] = None


def ground_note(note: SOAPNote, note_input: NoteInput) -> SOAPNote:
    """Set every statement's `support` (and `reason` when it is not `supported`) from its evidence, in place."""
    grounder = Grounder(note_input)
    for section, statements in note.sections():
        for statement in statements:
            grounder.ground(statement, section)
    return note
