"""A SOAPNote rendered for people: the HTML review page and plain text, from `templates/notes/`.

One template per note type and format (`notes/progress_note.html.j2`); the note type is a
parameter. HTML is autoescaped, so transcript words can never become markup. Every statement
keeps its evidence: in HTML a link to the cited segment (its time and the quoted words on
hover), in text a time marker; statements that are not `supported` are marked in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jinja2

from scribe.errors import BadInputError
from scribe.notes.schema import AttachmentEvidence, RecordEvidence, SegmentEvidence, SOAPNote, Statement
from scribe.resources import template_environment, templates_dir
from scribe.transcript import Segment, Transcript

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
GROUPS = (("Subjective", ("subjective.chief_complaint", "subjective.hpi", "subjective.ros")),
          ("Objective", ("objective.vitals", "objective.exam", "objective.results", "objective.imaging")),
          ("Assessment", ("assessment",)), ("Plan", ("plan",)),
          ("Medications and allergies", ("medications", "allergies")))


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


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour), as a reviewer reads audio positions."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def span_times(segment: Segment, start_char: int, end_char: int) -> tuple[float, float]:
    """Audio times of characters start_char:end_char of a segment, from its word times when it has them."""
    if not segment.words:
        return segment.start, segment.end
    pos, first, last = 0, None, None
    for word in segment.words:
        token = word.word.strip()
        found = segment.text.find(token, pos) if token else -1
        if found < 0:
            continue
        pos = found + len(token)
        if pos > start_char and found < end_char:
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
            quote = segment.text[e.start_char:e.end_char] if segment else ""
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


def _sections(note: SOAPNote, transcript: Transcript | None) -> list[tuple[str, list[tuple[str, list]]]]:
    lists = dict(note.sections())
    groups = []
    for title, paths in GROUPS:
        parts = []
        for path in paths:
            rendered = [RenderedStatement(s.text, s.support, getattr(s, "reason", None), _links(s, transcript),
                                          _extras(s)) for s in lists[path]]
            parts.append((SECTION_TITLES[path], rendered))
        groups.append((title, parts))
    return groups


def available_templates(fmt: RenderFormat) -> list[str]:
    folder = templates_dir() / "notes"
    suffix = f".{fmt}.j2"
    return sorted(p.name[:-len(suffix)] for p in folder.glob(f"*{suffix}") if not p.name.startswith("_"))


def render_note(note: SOAPNote, transcript: Transcript | None = None, *, template: str = "progress_note",
                fmt: RenderFormat = "html", status: str = "draft", patient: str | None = None) -> str:
    """The note as a reviewer reads it; an unknown template is a BadInputError naming the ones there are."""
    if fmt not in ("html", "txt"):
        raise BadInputError(f"unknown note format {fmt!r}; choose html or txt")
    if template not in available_templates(fmt):
        raise BadInputError(f"no note template {template!r} for {fmt}; available: "
                            + ", ".join(available_templates(fmt)))
    counts = {k: sum(s.support == k for s in note.statements()) for k in ("unsupported", "review")}
    segments = [s for s in transcript.segments if s.text.strip()] if transcript else []
    timed = any(s.end > 0 for s in segments)
    try:
        return template_environment().get_template(f"notes/{template}.{fmt}.j2").render(
            note=note, groups=_sections(note, transcript), counts=counts, status=status, patient=patient,
            segments=segments, timed=timed, clock=clock)
    except jinja2.TemplateError as exc:  # a site's edited template: say which and why, no traceback
        raise BadInputError(f"template notes/{template}.{fmt}.j2 failed: {exc}") from None
