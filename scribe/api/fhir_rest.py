"""`/fhir`: the FHIR R4 REST face an EHR pulls notes from (docs/fhir.md "REST for EHR pull").

Resources come from JSON stored at each change of a note (see scribe.notes.stored), so a read or a
search is an indexed query plus string work: the server's base URL replaces a placeholder, and
bundles are assembled without re-validating every resource. Every response is FHIR JSON; every
error an OperationOutcome.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

import scribe
from scribe.api import schemas
from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import current_principal, require_admin
from scribe.api.deps import DbSession
from scribe.api.errors import operation_outcome
from scribe.api.etags import etag_matches
from scribe.api.state import service
from scribe.audit import audit_event
from scribe.auth.tokens import Principal
from scribe.errors import ForbiddenError, NotFoundError
from scribe.fhir.resources import fhir_id
from scribe.fhir.search import Search, audit_search, document_search, provenance_search, run, visible_notes
from scribe.notes.stored import BASE_PLACEHOLDER
from scribe.store.models import AuditRecord, Note, NoteVersion

router = APIRouter(
    prefix="/fhir",
    tags=["fhir"],
    default_response_class=Response,
    responses={**schemas.COMMON_ERRORS, **schemas.errors(404)},
)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "not modified since the ETag sent"}}
PAGING = ("_count", "_offset", "_summary", "_format")
FHIR_JSON = "application/fhir+json"


def fhir_response(body: dict[str, Any] | str, status: int = 200, etag: str | None = None) -> Response:
    content = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    headers = {"ETag": etag} if etag else None
    return Response(content, status_code=status, media_type=f"{FHIR_JSON}; charset=utf-8", headers=headers)


def fhir_base(request: Request) -> str:
    public = service(request).settings.public_url
    return (public.rstrip("/") if public else str(request.base_url).rstrip("/")) + "/fhir"


def reader(resource: str):
    """Dependency factory: a caller with `<user|system>/<resource>.rs` (read + search)."""

    def resolve(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.has_scope(f"{principal.kind}/{resource}.rs"):
            raise ForbiddenError(f"scope {principal.kind}/{resource}.rs required")
        return principal

    return resolve


def _stored(text: str | None, base: str) -> str:
    assert text is not None, "notes always carry their FHIR JSON"
    return text.replace(BASE_PLACEHOLDER, base)


def _visible_note(session: Session, principal: Principal, note_id: str, audit: AuditScope) -> Note:
    """The note behind a read of its DocumentReference, Binary or Provenance, by the rule searches follow; the
    audit record names its patient."""
    note = session.scalars(visible_notes(select(Note).where(Note.id == note_id), principal)).first()
    if note is None:
        raise NotFoundError(f"DocumentReference/{note_id} is not known")  # what you may not see does not exist
    audit.patient_id = note.patient_id
    return note


# ---------------------------------------------------------------------------------------------- metadata


@router.get("/metadata", responses=schemas.fhir_ok("the CapabilityStatement"))
def metadata(request: Request) -> Response:
    """The CapabilityStatement (public): what this server reads and searches, and how to get a token."""
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    base = fhir_base(request)
    token_url = base.removesuffix("/fhir") + "/auth/token"
    search = [
        ("_id", "token"),
        ("patient", "reference"),
        ("subject", "reference"),
        ("category", "token"),
        ("type", "token"),
        ("status", "token"),
        ("date", "date"),
        ("_count", "number"),
    ]
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": {"name": "scribe", "version": scribe.__version__},
        "implementation": {"description": "scribe clinical notes", "url": base},
        "instantiates": ["http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                },
                "resource": [
                    {
                        "type": "DocumentReference",
                        "supportedProfile": [
                            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"
                        ],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "versioning": "versioned",
                        "conditionalRead": "full-support",
                        "searchRevInclude": ["Provenance:target"],
                        "searchParam": [{"name": n, "type": t} for n, t in search],
                    },
                    {"type": "Binary", "interaction": [{"code": "read"}]},
                    {
                        "type": "Provenance",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "target", "type": "reference"},
                            {"name": "patient", "type": "reference"},
                        ],
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "date", "type": "date"},
                            {"name": "patient", "type": "reference"},
                            {"name": "agent", "type": "reference"},
                            {"name": "action", "type": "token"},
                            {"name": "outcome", "type": "token"},
                            {"name": "entity", "type": "reference"},
                        ],
                    },
                ],
            }
        ],
    }
    return fhir_response(CapabilityStatement.model_validate(statement).model_dump(mode="json", exclude_none=True))


# ---------------------------------------------------------------------------------------------- reads


@router.get("/DocumentReference/{id}", responses={**schemas.fhir_ok("the DocumentReference"), **NOT_MODIFIED})
def read_document(
    id: str,
    request: Request,
    session: DbSession,
    if_none_match: str | None = Header(None),
    principal: Principal = Depends(reader("DocumentReference")),
    audit: AuditScope = Depends(audited("read", "DocumentReference")),
) -> Response:
    note = _visible_note(session, principal, id, audit)
    etag = f'W/"{note.fhir_version}"'
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return fhir_response(_stored(note.document_json, fhir_base(request)), etag=etag)


@router.get(
    "/Binary/{id}",
    responses=schemas.fhir_ok(
        "the rendering: Binary JSON when FHIR is asked for, else the text or HTML itself", "text/plain", "text/html"
    ),
)
def read_binary(
    id: str,
    request: Request,
    session: DbSession,
    accept: str | None = Header(None),
    principal: Principal = Depends(reader("DocumentReference")),
    audit: AuditScope = Depends(audited("read", "Binary")),
) -> Response:
    """A rendering of a note: FHIR Binary JSON when asked for FHIR, else the text/html itself."""
    note_id, _, kind = id.rpartition("-")
    if kind not in ("text", "html") or not note_id:
        raise NotFoundError(f"Binary/{id} is not known")
    note = _visible_note(session, principal, note_id, audit)
    current = session.get(NoteVersion, (note.id, note.version))
    assert current is not None
    content = current.text_rendering if kind == "text" else current.html_rendering
    media = "text/plain" if kind == "text" else "text/html"
    etag = f'W/"{note.fhir_version}"'
    wants_fhir = accept and ("fhir+json" in accept or "application/json" in accept)
    if wants_fhir:
        body = {
            "resourceType": "Binary",
            "id": fhir_id(id),
            "meta": {"versionId": str(note.fhir_version)},
            "contentType": media,
            "data": base64.b64encode(content.encode("utf-8")).decode("ascii"),
        }
        return fhir_response(body, etag=etag)
    return Response(content, media_type=f"{media}; charset=utf-8", headers={"ETag": etag})


@router.get("/Provenance/{id}", responses=schemas.fhir_ok("the Provenance"))
def read_provenance(
    id: str,
    request: Request,
    session: DbSession,
    principal: Principal = Depends(reader("Provenance")),
    audit: AuditScope = Depends(audited("read", "Provenance")),
) -> Response:
    note = _visible_note(session, principal, id.rsplit("-v", 1)[0], audit)
    stored = json.loads(_stored(note.provenance_json, fhir_base(request)))
    if stored.get("id") != id:
        raise NotFoundError(f"Provenance/{id} is not the note's current provenance")
    return fhir_response(stored)


@router.get("/AuditEvent/{id}", responses=schemas.fhir_ok("the AuditEvent"))
def read_audit_event(
    id: str,
    session: DbSession,
    principal: Principal = Depends(require_admin),
    audit: AuditScope = Depends(audited("read", "AuditEvent")),
) -> Response:
    row = session.get(AuditRecord, int(id)) if id.isdigit() else None
    if row is None:
        raise NotFoundError(f"AuditEvent/{id} is not known")
    return fhir_response(audit_event(row))


# ---------------------------------------------------------------------------------------------- searches


def _bundle(request: Request, resource: str, search: Search, total: int, entries: list[str]) -> Response:
    """A searchset Bundle with `self` and (when there is more) `next`/`previous` links; entries are JSON text."""
    base = fhir_base(request)
    url = f"{base}/{resource}"

    def link(offset: int) -> str:
        query = search.echo + ([("_offset", str(offset))] if offset else [])
        return f"{url}?{urlencode(query)}" if query else url

    links = [{"relation": "self", "url": link(search.offset)}]
    if not search.summary_count and search.offset + search.count < total:
        links.append({"relation": "next", "url": link(search.offset + search.count)})
    if search.offset and not search.summary_count:
        links.append({"relation": "previous", "url": link(max(0, search.offset - search.count))})
    head = json.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}, separators=(",", ":")
    )
    if not entries:
        return fhir_response(head)
    return fhir_response(head[:-1] + ',"entry":[' + ",".join(entries) + "]}")


def _entry(full_url: str, resource_json: str, mode: str) -> str:
    return f'{{"fullUrl":{json.dumps(full_url)},"resource":{resource_json},"search":{{"mode":"{mode}"}}}}'


def _single_patient(params: list[tuple[str, str]]) -> str | None:
    for name, value in params:
        if name.split(":")[0] in ("patient", "subject") and "," not in value:
            return value.rsplit("/", 1)[-1]
    return None


@router.get(
    "/DocumentReference",
    responses=schemas.fhir_ok("a searchset Bundle"),
    openapi_extra=schemas.query(
        "_id", "patient", "subject", "category", "date", "type", "status", "_revinclude", "_sort", *PAGING
    ),
)
def search_documents(
    request: Request,
    session: DbSession,
    principal: Principal = Depends(reader("DocumentReference")),
    audit: AuditScope = Depends(audited("search", "DocumentReference")),
) -> Response:
    params = list(request.query_params.multi_items())
    audit.patient_id = _single_patient(params)
    search = document_search(params, principal)
    base = fhir_base(request)
    total, notes = run(session, search)
    entries = [_entry(f"{base}/DocumentReference/{n.id}", _stored(n.document_json, base), "match") for n in notes]
    if search.revinclude_provenance:
        entries += _provenance_entries(notes, base, "include")
    return _bundle(request, "DocumentReference", search, total, entries)


@router.get(
    "/Provenance",
    responses=schemas.fhir_ok("a searchset Bundle"),
    openapi_extra=schemas.query("target", "patient", *PAGING),
)
def search_provenance(
    request: Request,
    session: DbSession,
    principal: Principal = Depends(reader("Provenance")),
    audit: AuditScope = Depends(audited("search", "Provenance")),
) -> Response:
    params = list(request.query_params.multi_items())
    audit.patient_id = _single_patient(params)
    search = provenance_search(params, principal)
    base = fhir_base(request)
    total, notes = run(session, search)
    return _bundle(request, "Provenance", search, total, _provenance_entries(notes, base, "match"))


def _provenance_entries(notes: Sequence[Note], base: str, mode: str) -> list[str]:
    """The searchset entries of the notes' current Provenance: matches, or included beside their notes."""
    entries = []
    for note in notes:
        stored = _stored(note.provenance_json, base)
        entries.append(_entry(f"{base}/Provenance/{json.loads(stored)['id']}", stored, mode))
    return entries


@router.get(
    "/AuditEvent",
    responses=schemas.fhir_ok("a searchset Bundle"),
    openapi_extra=schemas.query("date", "patient", "agent", "agent-name", "action", "outcome", "entity", *PAGING),
)
def search_audit(
    request: Request,
    session: DbSession,
    principal: Principal = Depends(require_admin),
    audit: AuditScope = Depends(audited("search", "AuditEvent")),
) -> Response:
    params = list(request.query_params.multi_items())
    search = audit_search(params)
    base = fhir_base(request)
    total, rows = run(session, search)
    entries = [
        _entry(f"{base}/AuditEvent/{r.id}", json.dumps(audit_event(r), separators=(",", ":")), "match") for r in rows
    ]
    return _bundle(request, "AuditEvent", search, total, entries)


@router.api_route("/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def read_only(path: str) -> Response:
    return operation_outcome(405, "this FHIR server is read-only: notes are written through /v1")
