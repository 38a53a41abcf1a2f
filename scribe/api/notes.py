"""`/v1/notes/{id}`: read, edit (If-Match), sign, amend, addendum, versions and renderings of a note."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from scribe.api import schemas
from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.bodies import NoteBodyRoute, read_json
from scribe.api.deps import AppSettings, DbSession, in_note, note_for
from scribe.api.etags import etag_matches
from scribe.auth.tokens import Principal
from scribe.notes.lifecycle import add_addendum, amend_note, edit_note, sign_note
from scribe.notes.stored import NoteView, versions
from scribe.text import MultiLineText

router = APIRouter(
    prefix="/v1/notes",
    tags=["notes"],
    route_class=NoteBodyRoute,
    responses={**schemas.COMMON_ERRORS, **schemas.errors(404)},
)


class _NoteAnswer(TypedDict):
    """The route options of every route answering a note, typed so that `**NOTE` is checked against the router's."""

    response_model: type[schemas.Note]
    response_model_exclude_none: bool


NOTE: _NoteAnswer = {"response_model": schemas.Note, "response_model_exclude_none": True}
# An edit is the SOAPNote itself, or the note as read (`{"note": SOAPNote, ...}`, an `addendum` kept or changed).
EDIT_BODY = schemas.body(
    {
        "application/json": {
            "oneOf": [
                {"$ref": "#/components/schemas/SOAPNote"},
                {
                    "type": "object",
                    "required": ["note"],
                    "properties": {
                        "note": {"$ref": "#/components/schemas/SOAPNote"},
                        "addendum": {"type": ["string", "null"]},
                    },
                },
            ]
        }
    },
    "the edited note",
)

READ = "user/DocumentReference.rs"
WRITE = "user/DocumentReference.u"
CREATE = "user/DocumentReference.c"


class SignOptions(BaseModel):
    confirm_unsupported: bool = Field(
        default=False,
        description=(
            "the clinician has checked the statements that are `unsupported` by their evidence or in `conflict` with "
            "the patient's records; without it, signing a note that has any is refused (409)"
        ),
    )
    attestation: MultiLineText | None = Field(default=None, max_length=1000)


class AmendBody(BaseModel):
    reason: MultiLineText = Field(min_length=1, max_length=2000)
    note: dict[str, Any] | None = None


class AddendumBody(BaseModel):
    text: MultiLineText = Field(min_length=1, max_length=20000)
    reason: MultiLineText | None = Field(default=None, max_length=2000)


def _respond(view: NoteView, response: Response, *, created: bool = False) -> dict[str, Any]:
    """The note as `schemas.Note`, its version as the ETag (and, when new, where it lives)."""
    response.headers["ETag"] = view.etag
    if created:
        response.headers["Location"] = f"/v1/notes/{view.note.id}"
    return view.to_json()


@router.get("/{id}", **NOTE, responses={304: {"description": "not modified since the ETag sent"}})
def read(
    response: Response,
    if_none_match: str | None = Header(None),
    view: NoteView = Depends(note_for(READ, "read")),
) -> Any:
    if etag_matches(if_none_match, view.etag):
        return Response(status_code=304, headers={"ETag": view.etag})
    return _respond(view, response)


@router.put("/{id}", **NOTE, responses=schemas.errors(409, 412, 428), openapi_extra=EDIT_BODY)
async def update(
    id: str,
    request: Request,
    response: Response,
    settings: AppSettings,
    if_match: str | None = Header(None),
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("update", "DocumentReference")),
) -> dict[str, Any]:
    """Save an edit: the body is the SOAPNote (or the draft wrapper holding it); needs `If-Match`."""
    body = await read_json(request, settings.max_note_bytes, required=True)
    view = await in_note(request, audit, lambda s: edit_note(s, principal, id, body, if_match))
    return _respond(view, response)


@router.post("/{id}/sign", **NOTE, responses=schemas.errors(409, 412))
async def sign(
    id: str,
    request: Request,
    response: Response,
    settings: AppSettings,
    options: SignOptions | None = None,
    if_match: str | None = Header(None),
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("sign", "DocumentReference")),
) -> dict[str, Any]:
    """Sign the current version (no body needed). Only the encounter's clinician may; unsupported or conflicting
    statements need `confirm_unsupported`."""
    options = options or SignOptions()
    view = await in_note(
        request,
        audit,
        lambda s: sign_note(
            s,
            settings,
            principal,
            id,
            if_match=if_match,
            confirm_unsupported=options.confirm_unsupported,
            attestation=options.attestation,
        ),
    )
    return _respond(view, response)


@router.post("/{id}/amend", status_code=201, **NOTE, responses=schemas.errors(409))
async def amend(
    id: str,
    body: AmendBody,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_scope(CREATE)),
    audit: AuditScope = Depends(audited("amend", "DocumentReference")),
) -> dict[str, Any]:
    """A new draft that replaces the signed note once signed; `{"reason"}` required, optional `"note"`."""
    view = await in_note(request, audit, lambda s: amend_note(s, principal, id, reason=body.reason, body=body.note))
    return _respond(view, response, created=True)


@router.post("/{id}/addendum", status_code=201, **NOTE, responses=schemas.errors(409))
async def addendum(
    id: str,
    body: AddendumBody,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_scope(CREATE)),
    audit: AuditScope = Depends(audited("addendum", "DocumentReference")),
) -> dict[str, Any]:
    view = await in_note(request, audit, lambda s: add_addendum(s, principal, id, text=body.text, reason=body.reason))
    return _respond(view, response, created=True)


@router.get("/{id}/versions", response_model=schemas.NoteVersions, response_model_exclude_none=True)
def list_versions(
    session: DbSession,
    view: NoteView = Depends(note_for(READ, "read")),
    audit: AuditScope = Depends(audited("read", "DocumentReference")),
) -> dict[str, Any]:
    audit.detail = "versions"
    return {
        "note_id": view.note.id,
        "versions": [
            {
                "version": v.version,
                "created_by": v.created_by,
                "created_at": v.created_at.isoformat(timespec="seconds"),
                "note": json.loads(v.body),
                **({"addendum": v.addendum} if v.addendum else {}),
            }
            for v in versions(session, view)
        ],
    }


@router.get(
    "/{id}/rendering",
    response_class=Response,
    responses={
        200: {
            "description": "the rendering",
            "content": {"text/html": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def rendering(
    format: str = Query("html", pattern="^(html|txt)$"),
    view: NoteView = Depends(note_for(READ, "read")),
) -> Response:
    """The review page (HTML: evidence links, unsupported statements marked) or the plain text."""
    if format == "html":
        return Response(view.current.html_rendering, media_type="text/html; charset=utf-8", headers={"ETag": view.etag})
    return Response(view.current.text_rendering, media_type="text/plain; charset=utf-8", headers={"ETag": view.etag})
