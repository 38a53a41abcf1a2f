"""A SOAPNote rendered for people: the HTML review page and plain text, from `templates/notes/`.

One template per note type and format (`notes/progress_note.html.j2`); the note type is a
parameter. HTML is autoescaped, so transcript words can never become markup. Every statement
keeps its evidence: in HTML a link to the cited segment (its time and the quoted words on
hover), in text a time marker; statements that are not `supported` are marked in both, a conflict
with the records with both values, and words heard with low confidence with their probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jinja2

from scribe.errors import BadInputError
from scribe.notes.schema import (
    AttachmentEvidence,
    LowConfidenceWord,
    RecordConflict,
    RecordEvidence,
    SegmentEvidence,
    SOAPNote,
    Statement,
)
from scribe.resources import template_environment, templates_dir
from scribe.transcript import Segment, Transcript, word_spans

RenderFormat = Literal["html", "txt"]

SECTION_TITLES = {
    "subjective.chief_complaint": "Chief complaint",
    "subjective.hpi": "History of present illness",
    "subjective.ros": "Review of systems",
    "objective.vitals": "Vital signs",
    "objective.exam": "Physical examination",
    "objective.results": "Results",
    "objective.imaging": "Imaging",
    "assessment": "Assessment",
    "plan": "Plan",
    "medications": "Medications",
    "allergies": "Allergies",
}
GROUPS = (
    ("Subjective", ("subjective.chief_complaint", "subjective.hpi", "subjective.ros")),
    ("Objective", ("objective.vitals", "objective.exam", "objective.results", "objective.imaging")),
    ("Assessment", ("assessment",)),
    ("Plan", ("plan",)),
    ("Medications and allergies", ("medications", "allergies")),
)


@dataclass(frozen=True)
class EvidenceLink:
    """One citation as a reader follows it."""

    kind: str  # "segment" | "record" | "attachment"
    label: str  # "0:12", "MedicationStatement/m1", "image-1"
    target: str  # anchor or id
    quote: str = ""  # the cited words (segments) for hover
    start: float | None = None  # seconds into the audio (segments with timing)
    end: float | None = None


@dataclass(frozen=True)
class RenderedStatement:
    text: str
    support: str
    reason: str | None
    links: list[EvidenceLink]
    extras: list[str]  # "ICD-10 I10", "new", ...
    conflicts: list[RecordConflict]  # what was said against what the records hold
    low_confidence: list[LowConfidenceWord]  # critical words the recogniser was unsure of


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour), as a reviewer reads audio positions."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def span_times(segment: Segment, start_char: int, end_char: int) -> tuple[float, float]:
    """Audio times of characters start_char:end_char of a segment, from its word times when it has them."""
    first, last = None, None
    for word, found, end in word_spans(segment):
        if end > start_char and found < end_char:
            first = word.start if first is None else first
            last = word.end
    return (first, last) if first is not None and last is not None else (segment.start, segment.end)


def _links(statement: Statement, transcript: Transcript | None) -> list[EvidenceLink]:
    segments = {s.id: s for s in transcript.segments} if transcript else {}
    timed = transcript is not None and any(s.end > 0 for s in transcript.segments)
    links = []
    for e in statement.evidence:
        if isinstance(e, SegmentEvidence):
            segment = segments.get(e.segment_id)
            quote = segment.text[e.start_char : e.end_char] if segment else ""
            if segment is not None and timed:
                start, end = span_times(segment, e.start_char, e.end_char)
                links.append(EvidenceLink("segment", clock(start), f"seg-{e.segment_id}", quote, start, end))
            else:
                links.append(EvidenceLink("segment", f"#{e.segment_id}", f"seg-{e.segment_id}", quote))
        elif isinstance(e, RecordEvidence):
            links.append(EvidenceLink("record", e.record, e.record))
        elif isinstance(e, AttachmentEvidence):
            links.append(EvidenceLink("attachment", e.attachment, e.attachment))
    return links


def _extras(statement: Statement) -> list[str]:
    out = []
    if statement.icd10:
        out.append(f"ICD-10 {statement.icd10}")
    if statement.change:
        out.append(statement.change)
    return out


def _sections(
    note: SOAPNote, transcript: Transcript | None
) -> list[tuple[str, list[tuple[str, list[RenderedStatement]]]]]:
    lists = dict(note.sections())
    groups = []
    for title, paths in GROUPS:
        parts = []
        for path in paths:
            rendered = [
                RenderedStatement(
                    s.text,
                    s.support,
                    getattr(s, "reason", None),
                    _links(s, transcript),
                    _extras(s),
                    s.conflicts or [],
                    s.low_confidence or [],
                )
                for s in lists[path]
            ]
            parts.append((SECTION_TITLES[path], rendered))
        groups.append((title, parts))
    return groups


@dataclass(frozen=True)
class TextPiece:
    """A run of a segment's text; `probability` is set on a critical word heard with low confidence."""

    text: str
    probability: float | None = None


@dataclass(frozen=True)
class RenderedSegment:
    """A transcript segment as the page lists it: its text in pieces, low-confidence words apart."""

    id: int
    start: float
    end: float
    speaker: str | None
    text: str
    pieces: list[TextPiece]


def transcript_pieces(segment: Segment, words: list[LowConfidenceWord]) -> list[TextPiece]:
    """A segment's text cut so that the low-confidence words statements carry can be underlined."""
    marks = sorted({(w.start_char, w.end_char, w.probability) for w in words if w.segment_id == segment.id})
    pieces, position = [], 0
    for start, end, probability in marks:
        if start < position or end > len(segment.text):
            continue
        pieces += [TextPiece(segment.text[position:start]), TextPiece(segment.text[start:end], probability)]
        position = end
    pieces.append(TextPiece(segment.text[position:]))
    return [p for p in pieces if p.text]


def available_templates(fmt: RenderFormat) -> list[str]:
    folder = templates_dir() / "notes"
    suffix = f".{fmt}.j2"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if not p.name.startswith("_"))


def render_note(
    note: SOAPNote,
    transcript: Transcript | None = None,
    *,
    template: str = "progress_note",
    fmt: RenderFormat = "html",
    status: str = "draft",
    patient: str | None = None,
) -> str:
    """The note as a reviewer reads it; an unknown template is a BadInputError naming the ones there are."""
    if fmt not in ("html", "txt"):
        raise BadInputError(f"unknown note format {fmt!r}; choose html or txt")
    if template not in available_templates(fmt):
        raise BadInputError(
            f"no note template {template!r} for {fmt}; available: " + ", ".join(available_templates(fmt))
        )
    counts = {k: sum(s.support == k for s in note.statements()) for k in ("unsupported", "conflict", "review")}
    segments = [s for s in transcript.segments if s.text.strip()] if transcript else []
    timed = any(s.end > 0 for s in segments)
    unsure = [w for s in note.statements() for w in s.low_confidence or []]
    shown = [RenderedSegment(s.id, s.start, s.end, s.speaker, s.text, transcript_pieces(s, unsure)) for s in segments]
    try:
        return (
            template_environment()
            .get_template(f"notes/{template}.{fmt}.j2")
            .render(
                note=note,
                groups=_sections(note, transcript),
                counts=counts,
                status=status,
                patient=patient,
                segments=shown,
                timed=timed,
                clock=clock,
            )
        )
    except jinja2.TemplateError as exc:  # a site's edited template: say which and why, no traceback
        raise BadInputError(f"template notes/{template}.{fmt}.j2 failed: {exc}") from None
