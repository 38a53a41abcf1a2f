"""FHIR R4 out: US Core DocumentReference, Binary and Provenance for notes (docs/fhir.md).

Resources are built and validated with `fhir.resources.R4B` (R4-shaped; the package's default
import is R5) and returned as JSON-ready dicts. The codes the library cannot check (LOINC
type, US Core category, AIAST security label) are fixed here and asserted by the tests.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance

from scribe.errors import BadInputError

US_CORE_DOCREF = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
LOINC = "http://loinc.org"
AIAST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
IDENTIFIER_SYSTEM = "urn:scribe:note"
FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"

# Note type (template name) -> LOINC document type.
NOTE_TYPES: dict[str, tuple[str, str]] = {
    "progress_note": ("11506-3", "Progress note"),
    "history_and_physical": ("34117-2", "History and physical note"),
    "consult_note": ("11488-4", "Consult note"),
    "discharge_summary": ("18842-5", "Discharge summary"),
    "procedure_note": ("28570-0", "Procedure note"),
    "emergency_department_note": ("34111-5", "Emergency department note"),
}

NoteStatus = Literal["draft", "signed", "amended", "entered-in-error"]  # amended: replaced by a newer note
_DOC_STATUS = {"draft": "preliminary", "signed": "final", "amended": "final", "entered-in-error": "entered-in-error"}
RelationCode = Literal["replaces", "appends"]

_FHIR_ID = re.compile(r"[^A-Za-z0-9.-]")


def fhir_id(value: str) -> str:
    """A FHIR logical id ([A-Za-z0-9.-]{1,64}) for a local name such as a username."""
    cleaned = _FHIR_ID.sub("-", value)[:64].strip("-")
    if not cleaned:
        raise BadInputError(f"cannot make a FHIR id from {value!r}")
    return cleaned


@dataclass
class NoteDocument:
    """One note as the FHIR side sees it: who, whom, when, its lifecycle, its two renderings."""

    note_id: str
    version: int
    status: NoteStatus
    note_type: str
    patient_id: str
    author: str  # clinician username who owns the encounter
    created_at: datetime
    updated_at: datetime
    text: str  # text/plain rendering
    html: str  # text/html rendering
    engine: str
    model: str | None
    encounter_id: str | None = None
    patient_name: str | None = None
    author_name: str | None = None
    signed_by: str | None = None
    signed_at: datetime | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    relates_to: list[tuple[RelationCode, str]] = field(default_factory=list)  # (code, other note_id)


def _practitioner(username: str, display: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"Practitioner/{fhir_id(username)}"}
    if display:
        ref["display"] = display
    return ref


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def binary_ids(doc: NoteDocument) -> dict[str, str]:
    """Binary ids of a note's current renderings (by media type)."""
    return {"text/plain": f"{fhir_id(doc.note_id)}-text", "text/html": f"{fhir_id(doc.note_id)}-html"}


def document_reference(doc: NoteDocument, base_url: str = "", *, embed: bool = False) -> dict[str, Any]:
    """The note as a US Core DocumentReference; renderings are Binary URLs under `base_url`, or inline
    base64 data when `embed` (for pushing to an EHR that cannot call back)."""
    if doc.note_type not in NOTE_TYPES:
        raise BadInputError(f"note type {doc.note_type!r} has no LOINC code; known: {', '.join(NOTE_TYPES)}")
    code, display = NOTE_TYPES[doc.note_type]
    status = {"entered-in-error": "entered-in-error", "amended": "superseded"}.get(doc.status, "current")
    base = base_url.rstrip("/")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": fhir_id(doc.note_id),
        "meta": {
            "versionId": str(doc.version),
            "lastUpdated": _iso(doc.updated_at),
            "profile": [US_CORE_DOCREF],
            "security": [AIAST],
        },
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": doc.note_id}],
        "status": status,
        "docStatus": _DOC_STATUS[doc.status],
        "type": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "category": [{"coding": [{"system": US_CORE_CATEGORY, "code": "clinical-note", "display": "Clinical Note"}]}],
        "subject": {
            "reference": f"Patient/{fhir_id(doc.patient_id)}",
            **({"display": doc.patient_name} if doc.patient_name else {}),
        },
        "date": _iso(doc.created_at),
        "author": [_practitioner(doc.author, doc.author_name)],
        "content": [
            {
                "attachment": {
                    "contentType": media,
                    "title": display,
                    "creation": _iso(doc.updated_at),
                    **(
                        {"data": _base64(doc.text if media == "text/plain" else doc.html)}
                        if embed
                        else {"url": f"{base}/Binary/{binary_id}"}
                    ),
                },
                "format": {
                    "system": FORMAT_SYSTEM,
                    "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                    "display": "mimeType Sufficient",
                },
            }
            for media, binary_id in binary_ids(doc).items()
        ],
    }
    if doc.signed_by and doc.status != "draft":
        resource["authenticator"] = _practitioner(doc.signed_by, None)
    if doc.relates_to:
        resource["relatesTo"] = [
            {"code": code, "target": {"reference": f"DocumentReference/{fhir_id(other)}"}}
            for code, other in doc.relates_to
        ]
    context: dict[str, Any] = {}
    if doc.encounter_id:
        context["encounter"] = [{"identifier": {"system": "urn:scribe:encounter", "value": doc.encounter_id}}]
    if doc.period_start:
        context["period"] = {
            "start": _iso(doc.period_start),
            **({"end": _iso(doc.period_end)} if doc.period_end else {}),
        }
    if context:
        resource["context"] = context
    return DocumentReference.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _base64(content: str) -> str:
    return base64.b64encode(content.encode("utf-8")).decode("ascii")


def binary(binary_id: str, content_type: str, content: str) -> dict[str, Any]:
    resource = {"resourceType": "Binary", "id": binary_id, "contentType": content_type, "data": _base64(content)}
    return Binary.model_validate(resource).model_dump(mode="json", exclude_none=True)


def provenance(doc: NoteDocument) -> dict[str, Any]:
    """Who made this version: the AI device that drafted it and, once signed, the clinician who attested it."""
    device: dict[str, Any] = {
        "resourceType": "Device",
        "id": "drafting-model",
        "deviceName": [{"name": f"scribe {doc.engine} note engine", "type": "user-friendly-name"}],
        "version": [{"value": doc.model or doc.engine}],
        "type": {"text": "AI clinical documentation assistant"},
    }
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author",
                        "display": "Author",
                    }
                ]
            },
            "who": {"reference": "#drafting-model", "display": device["deviceName"][0]["name"]},
        }
    ]
    signed = doc.status != "draft" and doc.signed_by is not None
    if signed:
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "LA",
                            "display": "legal authenticator",
                        }
                    ]
                },
                "who": _practitioner(doc.signed_by or "", None),
            }
        )
    else:
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "verifier",
                            "display": "Verifier",
                        }
                    ]
                },
                "who": _practitioner(doc.author, doc.author_name),
            }
        )
    activity = (
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "LA",
            "display": "legal authenticator",
        }
        if signed
        else {"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE", "display": "create"}
    )
    recorded = doc.signed_at if signed and doc.signed_at else doc.updated_at
    resource = {
        "resourceType": "Provenance",
        "id": f"{fhir_id(doc.note_id)}-v{doc.version}",
        "meta": {"security": [AIAST]},
        "contained": [device],
        "target": [{"reference": f"DocumentReference/{fhir_id(doc.note_id)}/_history/{doc.version}"}],
        "occurredDateTime": _iso(recorded),
        "recorded": _iso(recorded),
        "activity": {"coding": [activity]},
        "agent": agents,
    }
    return Provenance.model_validate(resource).model_dump(mode="json", exclude_none=True)
