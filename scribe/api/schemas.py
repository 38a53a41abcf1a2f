"""What the REST API answers, as pydantic models and OpenAPI fragments: `/openapi.json` is generated from
these, so an EHR integrator can generate a client, and the API fuzzing test holds every answer to them.

Errors are FHIR OperationOutcomes (`application/fhir+json`) whatever the route; FHIR routes answer FHIR
resources in the same media type. Request bodies that are not JSON models (audio, images, records) are
described here too, so a generated client knows what to send.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from scribe.notes.schema import SOAPNote

FHIR_JSON = "application/fhir+json"

OPERATION_OUTCOME: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}
FHIR_RESOURCE: dict[str, Any] = {
    "title": "FHIR R4 resource",
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
}
_ERROR_TEXT = {
    400: "malformed request",
    401: "no valid credential",
    403: "not allowed",
    404: "not found (or not yours)",
    409: "conflicts with the resource's state",
    412: "changed since read (stale If-Match)",
    413: "body over the route's limit",
    415: "unsupported media type",
    422: "invalid input",
    428: "If-Match required",
    429: "too many failed attempts",
    503: "speech recognition or a note engine is unavailable",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses: each a FHIR OperationOutcome."""
    return {
        status: {"description": _ERROR_TEXT[status], "content": {FHIR_JSON: {"schema": OPERATION_OUTCOME}}}
        for status in statuses
    }


# Every authenticated route may answer these; routes add their own (404, 409, 412, ...).
COMMON_ERRORS = errors(400, 401, 403, 413, 415, 422, 429)


BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
MULTIPART_FILE: dict[str, Any] = {"type": "object", "properties": {"file": BINARY}, "required": ["file"]}


def body(media: dict[str, dict[str, Any]], description: str = "") -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: each media type it takes, with what it holds."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {kind: {"schema": shape} for kind, shape in media.items()},
        }
    }


def optional_json(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for an optional JSON body of `model` (routes that act without one)."""
    return {
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }


def content(media: str, schema: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema or {"type": "string"}}}}


def fhir_ok(description: str, *also: str) -> dict[int | str, dict[str, Any]]:
    """`responses` of a FHIR route: the resource (or Bundle) as FHIR JSON, and the other media types it serves."""
    media = {FHIR_JSON: {"schema": FHIR_RESOURCE}, **{kind: {"schema": {"type": "string"}} for kind in also}}
    return {200: {"description": description, "content": media}}


def query(*names: str) -> dict[str, Any]:
    """`openapi_extra` naming the search parameters a FHIR search reads itself (each may repeat)."""
    return {
        "parameters": [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in names]
    }


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patient(Out):
    id: str | None
    name: str | None


class Encounter(Out):
    id: str
    patient: Patient
    clinician: str
    mode: Literal["dictation", "encounter"]
    status: Literal["recording", "transcribed", "drafted", "signed", "amended"]
    created_at: str
    updated_at: str


class EncounterPage(Out):
    total: int
    encounters: list[Encounter]


class NoteRef(Out):
    id: str
    status: Literal["draft", "signed", "amended"]
    version: int
    relation: Literal["replaces", "appends"] | None
    related_note_id: str | None


class TranscriptSummary(Out):
    id: int
    engine: str
    duration_s: float
    segments: int


class UploadState(Out):
    state: Literal["transcribing", "done", "failed"]
    reason: str | None
    attempts: int
    updated_at: str


class StreamFormat(Out):
    sample_rate: int
    encoding: Literal["pcm_s16le", "pcm_f32le"]
    channels: int


class EncounterDetail(Encounter):
    notes: list[NoteRef]
    transcript: TranscriptSummary | None
    upload: UploadState | None
    stream_format: StreamFormat | None


class Word(Out):
    word: str
    start: float
    end: float
    probability: float | None


class Segment(Out):
    id: int
    start: float
    end: float
    text: str
    speaker: str | None
    words: list[Word]


class Transcript(Out):
    text: str
    language: str
    engine: str
    model: str
    duration_s: float
    processing_s: float
    segments: list[Segment]


class UploadPending(Out):
    encounter_id: str
    upload: UploadState | None


class RecordsAttached(Out):
    id: str
    patient: str | None
    medications: int
    problems: int
    allergies: int
    observations: int


class ImageAttached(Out):
    id: str
    format: Literal["png", "jpeg", "dicom"]
    width: int
    height: int
    modality: str | None
    body_part: str | None
    study_date: str | None
    label: str


class ContextPatient(Out):
    id: str | None
    name: str | None
    birth_date: str | None
    gender: str | None


class ContextImage(Out):
    id: str
    label: str
    format: str
    modality: str | None
    body_part: str | None
    study_date: str | None


class EncounterContext(Out):
    """The records' facts as scribe read them (each item: the fields of scribe.records' dataclasses)."""

    patient: ContextPatient
    records: list[str]
    medications: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    allergies: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    images: list[ContextImage]


class Relation(Out):
    code: Literal["replaces", "appends"]
    note_id: str | None


class Note(Out):
    """A note as the REST API shows it: lifecycle facts and the current version's SOAPNote."""

    id: str
    version: int
    status: Literal["draft", "signed", "amended"]
    encounter_id: str
    note_type: str
    note: SOAPNote
    created_at: str
    updated_at: str
    signed_at: str | None = None
    signed_by: str | None = None
    relates_to: Relation | None = None
    reason: str | None = None
    addendum: str | None = None


class NoteVersion(Out):
    version: int
    created_by: str
    created_at: str
    note: SOAPNote
    addendum: str | None = None


class NoteVersions(Out):
    note_id: str
    versions: list[NoteVersion]


class AsrEngineInfo(Out):
    name: str
    model: str
    reason: str  # why it serves this mode (the setting, or what `auto` found)


class HealthEngines(Out):
    asr: AsrEngineInfo | None  # the engine of a conversation (an encounter created by its stream is one)
    asr_modes: dict[Literal["dictation", "encounter"], AsrEngineInfo | None]  # which engine streams each mode


class HealthStreams(Out):
    live: int  # streams this node serves now
    capacity: int  # live streams it takes before refusing new ones with server_busy
    final_rtf: float | None  # measured wall seconds per audio second of the pass that makes finals (None: not yet)
    loaded_partial_rtf: float | None  # the same for a partial pass under load, per second of new audio
    configured: bool  # capacity fixed by SCRIBE_STREAM_CAPACITY rather than measured
    refused: int  # new streams refused with server_busy since the node started


class Health(Out):
    status: Literal["ok"]
    version: str
    ready: bool  # every mode has an engine that can stream, and the node is not shutting down
    reason: str | None  # why not ready: loading, failed (and why), off on this node, or draining
    engines: HealthEngines
    streams: HealthStreams | None  # None until the engines are loaded


class SmartConfiguration(Out):
    token_endpoint: str
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    grant_types_supported: list[str]
    scopes_supported: list[str]
    capabilities: list[str]


class AccessToken(Out):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    scope: str


OAUTH_ERROR: dict[str, Any] = {
    "title": "OAuth2 error",
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
