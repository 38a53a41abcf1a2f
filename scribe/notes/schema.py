"""The SOAPNote every note engine returns (JSON shape fixed in docs/interfaces.md).

Every statement carries its evidence — transcript character spans, a prior-record resource
or an attachment — and a `support` verdict, so a reviewer can check any sentence in seconds.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Support = Literal["supported", "unsupported", "from_records", "review", "conflict"]
Change = Literal["new", "stopped", "changed", "continued"]
ConflictField = Literal["drug", "dose", "frequency", "allergy"]


class SegmentEvidence(BaseModel):
    """Characters `start_char:end_char` of transcript segment `segment_id`'s text."""

    model_config = ConfigDict(extra="forbid")
    segment_id: int
    start_char: int = Field(ge=0)
    end_char: int = Field(ge=0)


class RecordEvidence(BaseModel):
    """A resource of the prior-records bundle, as `Type/id`."""

    model_config = ConfigDict(extra="forbid")
    record: str


class AttachmentEvidence(BaseModel):
    """An attached image, by its attachment id (`image-1`)."""

    model_config = ConfigDict(extra="forbid")
    attachment: str


Evidence = SegmentEvidence | RecordEvidence | AttachmentEvidence


class RecordConflict(BaseModel):
    """Where a statement disagrees with the patient's records: both values, so the reviewer decides which is right."""

    model_config = ConfigDict(extra="forbid")
    field: ConflictField
    said: str  # the statement's value: "100 mg", "daily", "amoxicillin"
    records: str  # the record's value: "500 mg", "twice daily", "allergy to penicillin (hives)"
    record: str  # the resource that holds it, as `Type/id`


class LowConfidenceWord(BaseModel):
    """A critical word of the evidence (drug, number, unit, frequency, allergy, negation) heard with low confidence."""

    model_config = ConfigDict(extra="forbid")
    text: str
    probability: float = Field(ge=0, le=1)
    segment_id: int
    start_char: int = Field(ge=0)
    end_char: int = Field(ge=0)


class Statement(BaseModel):
    """One sentence of the note. Engine extras (`icd10`, `dose`, ...) are optional fields."""

    model_config = ConfigDict(extra="allow")
    text: str
    support: Support = "supported"
    evidence: list[Evidence] = Field(default_factory=list)
    icd10: str | None = None
    dose: str | None = None
    route: str | None = None
    frequency: str | None = None
    problem: str | None = None  # the assessment problem a plan item belongs to
    change: Change | None = None  # medication reconciliation against the prior record
    conflicts: list[RecordConflict] | None = None  # set by grounding when `support` is `conflict` (or unsupported)
    low_confidence: list[LowConfidenceWord] | None = None  # set by grounding from the transcript's word probabilities


class Subjective(BaseModel):
    chief_complaint: list[Statement] = Field(default_factory=list)
    hpi: list[Statement] = Field(default_factory=list)
    ros: list[Statement] = Field(default_factory=list)


class Objective(BaseModel):
    vitals: list[Statement] = Field(default_factory=list)
    exam: list[Statement] = Field(default_factory=list)
    results: list[Statement] = Field(default_factory=list)
    imaging: list[Statement] = Field(default_factory=list)


class NoteMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    engine: str
    model: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    transcript_id: str | int | None = None
    processing_s: float | None = None


class SOAPNote(BaseModel):
    note_type: str = "progress_note"
    subjective: Subjective = Field(default_factory=Subjective)
    objective: Objective = Field(default_factory=Objective)
    assessment: list[Statement] = Field(default_factory=list)
    plan: list[Statement] = Field(default_factory=list)
    medications: list[Statement] = Field(default_factory=list)
    allergies: list[Statement] = Field(default_factory=list)
    metadata: NoteMetadata

    def sections(self) -> list[tuple[str, list[Statement]]]:
        """Every statement list with its dotted path, in reading order (for grounding, rendering, scoring)."""
        return [
            ("subjective.chief_complaint", self.subjective.chief_complaint),
            ("subjective.hpi", self.subjective.hpi),
            ("subjective.ros", self.subjective.ros),
            ("objective.vitals", self.objective.vitals),
            ("objective.exam", self.objective.exam),
            ("objective.results", self.objective.results),
            ("objective.imaging", self.objective.imaging),
            ("assessment", self.assessment),
            ("plan", self.plan),
            ("medications", self.medications),
            ("allergies", self.allergies),
        ]

    def statements(self) -> list[Statement]:
        return [s for _, items in self.sections() for s in items]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent, exclude_none=True)


def note_json_schema() -> dict[str, Any]:
    """The full SOAPNote JSON schema (for clients and documentation)."""
    return SOAPNote.model_json_schema()


# ---------------------------------------------------------------------------------------------
# What an LLM is asked to produce: the note without metadata, statements citing segment ids.
# Strings and arrays are bounded so grammar-constrained decoding of a weak model cannot loop.

MAX_STATEMENT_CHARS = 400
MAX_ITEMS_PER_SECTION = 24
MAX_EVIDENCE_PER_STATEMENT = 8


def _llm_statement_schema(max_chars: int, max_evidence: int) -> dict[str, Any]:
    text = {"type": "string", "maxLength": max_chars}
    short = {"type": "string", "maxLength": 40}
    return {
        "type": "object",
        "properties": {
            "text": {**text, "minLength": 1},
            "segment_ids": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 99999},
                "maxItems": max_evidence,
            },
            "records": {"type": "array", "items": short, "maxItems": max_evidence},
            "attachments": {"type": "array", "items": short, "maxItems": max_evidence},
        },
        "required": ["text", "segment_ids"],
        "additionalProperties": False,
    }


def llm_note_schema(
    max_items: int = MAX_ITEMS_PER_SECTION,
    max_chars: int = MAX_STATEMENT_CHARS,
    max_evidence: int = MAX_EVIDENCE_PER_STATEMENT,
) -> dict[str, Any]:
    """JSON schema for LLM output: statements `{text, segment_ids, records?, attachments?}` per section.

    The engine turns it into a SOAPNote with `statements_from_llm`; character spans and the
    support verdict are then computed by the grounding check, never taken from the model.
    """
    statement = _llm_statement_schema(max_chars, max_evidence)
    items = {"type": "array", "items": statement, "maxItems": max_items}

    def group(*names: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {n: copy.deepcopy(items) for n in names},
            "required": list(names),
            "additionalProperties": False,
        }

    return {
        "type": "object",
        "properties": {
            "subjective": group("chief_complaint", "hpi", "ros"),
            "objective": group("vitals", "exam", "results", "imaging"),
            "assessment": copy.deepcopy(items),
            "plan": copy.deepcopy(items),
            "medications": copy.deepcopy(items),
            "allergies": copy.deepcopy(items),
        },
        "required": ["subjective", "objective", "assessment", "plan", "medications", "allergies"],
        "additionalProperties": False,
    }


def note_from_llm(data: dict[str, Any], metadata: NoteMetadata) -> SOAPNote:
    """Build a SOAPNote from output that follows `llm_note_schema` (already JSON-decoded and valid).

    Segment evidence starts with an empty span (0, 0) that the grounding check replaces by the
    span that supports the statement; support is `review` until grounding decides.
    """

    def statements(raw: list[dict[str, Any]]) -> list[Statement]:
        out = []
        for item in raw:
            evidence: list[Evidence] = [
                SegmentEvidence(segment_id=i, start_char=0, end_char=0) for i in item.get("segment_ids", [])
            ]
            evidence += [RecordEvidence(record=r) for r in item.get("records", [])]
            evidence += [AttachmentEvidence(attachment=a) for a in item.get("attachments", [])]
            out.append(Statement(text=item["text"].strip(), support="review", evidence=evidence))
        return out

    return SOAPNote(
        subjective=Subjective(**{k: statements(v) for k, v in data["subjective"].items()}),
        objective=Objective(**{k: statements(v) for k, v in data["objective"].items()}),
        assessment=statements(data["assessment"]),
        plan=statements(data["plan"]),
        medications=statements(data["medications"]),
        allergies=statements(data["allergies"]),
        metadata=metadata,
    )
