"""`/v1/notes/{id}`: read, edit (If-Match), sign, amend, addendum, versions and renderings of a note."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.bodies import read_json, validated
from scribe.api.etags import etag_matches
from scribe.auth.tokens import Principal
from scribe.documents import NoteView, add_addendum, amend_note, edit_note, get_note, sign_note, versions
from scribe.text import MultiLineText

router = APIRouter(prefix="/v1/notes", tags=["notes"])

READ = "user/DocumentReference.rs"
WRITE = "user/DocumentReference.u"
CREATE = "user/DocumentReference.c"


class SignOptions(BaseModel):
    confirm_unsupported: bool = False
    attestation: MultiLineText | None = Field(default=None, max_length=1000)


class AmendBody(BaseModel):
    reason: MultiLineText = Field(min_length=1, max_length=2000)
    note: dict[str, Any] | None = None


class AddendumBody(BaseModel):
    text: MultiLineText = Field(min_length=1, max_length=20000)
    reason: MultiLineText | None = Field(default=None, max_length=2000)


def _respond(view: NoteView, status: int = 200) -> JSONResponse:
    headers = {"ETag": view.etag}
    if status == 201:
        headers["Location"] = f"/v1/notes/{view.note.id}"
    return JSONResponse(view.to_json(), status_code=status, headers=headers)


def _in_session(request: Request, audit: AuditScope, work) -> NoteView:
    with request.app.state.database.session() as session, session.begin():
        view = work(session)
        audit.patient_id = view.encounter.patient_id
        audit.resource_id = view.note.id
        return view


@router.get("/{id}")
def read(id: str, request: Request, if_none_match: str | None = Header(None),
         principal: Principal = Depends(require_scope(READ)),
         audit: AuditScope = Depends(audited("read", "DocumentReference"))) -> Response:
    with request.app.state.database.session() as session:
        view = get_note(session, principal, id)
        audit.patient_id = view.encounter.patient_id
        if etag_matches(if_none_match, view.etag):
            return Response(status_code=304, headers={"ETag": view.etag})
        return _respond(view)


@router.put("/{id}")
async def update(id: str, request: Request, if_match: str | None = Header(None),
                 principal: Principal = Depends(require_scope(WRITE)),
                 audit: AuditScope = Depends(audited("update", "DocumentReference"))) -> Response:
    """Save an edit: the body is the SOAPNote (or the draft wrapper holding it); needs `If-Match`."""
    body = await read_json(request, request.app.state.settings.max_note_bytes, required=True)
    view = await asyncio.to_thread(_in_session, request, audit,
                                   lambda s: edit_note(s, principal, id, body, if_match))
    return _respond(view)


@router.post("/{id}/sign")
async def sign(id: str, request: Request, if_match: str | None = Header(None),
               principal: Principal = Depends(require_scope(WRITE)),
               audit: AuditScope = Depends(audited("sign", "DocumentReference"))) -> Response:
    """Sign the current version (no body needed). Only the encounter's clinician may."""
    options = validated(SignOptions, await read_json(request, request.app.state.settings.max_form_bytes,
                                                     required=False))
    settings = request.app.state.settings
    view = await asyncio.to_thread(_in_session, request, audit, lambda s: sign_note(
        s, settings, principal, id, if_match=if_match, confirm_unsupported=options.confirm_unsupported,
        attestation=options.attestation))
    return _respond(view)


@router.post("/{id}/amend", status_code=201)
async def amend(id: str, request: Request, principal: Principal = Depends(require_scope(CREATE)),
                audit: AuditScope = Depends(audited("amend", "DocumentReference"))) -> Response:
    """A new draft that replaces the signed note once signed; `{"reason"}` required, optional `"note"`."""
    body = validated(AmendBody, await read_json(request, request.app.state.settings.max_note_bytes, required=True))
    view = await asyncio.to_thread(_in_session, request, audit,
                                   lambda s: amend_note(s, principal, id, reason=body.reason, body=body.note))
    return _respond(view, 201)


@router.post("/{id}/addendum", status_code=201)
async def addendum(id: str, request: Request, principal: Principal = Depends(require_scope(CREATE)),
                   audit: AuditScope = Depends(audited("addendum", "DocumentReference"))) -> Response:
    body = validated(AddendumBody, await read_json(request, request.app.state.settings.max_note_bytes,
                                                   required=True))
    view = await asyncio.to_thread(_in_session, request, audit,
                                   lambda s: add_addendum(s, principal, id, text=body.text, reason=body.reason))
    return _respond(view, 201)


@router.get("/{id}/versions")
def list_versions(id: str, request: Request, principal: Principal = Depends(require_scope(READ)),
                  audit: AuditScope = Depends(audited("read", "DocumentReference"))) -> dict[str, Any]:
    with request.app.state.database.session() as session:
        rows = versions(session, principal, id)
        audit.detail = "versions"
        return {"note_id": id, "versions": [
            {"version": v.version, "created_by": v.created_by, "created_at": v.created_at.isoformat(timespec="seconds"),
             "note": json.loads(v.body), **({"addendum": v.addendum} if v.addendum else {})} for v in rows]}


@router.get("/{id}/rendering")
def rendering(id: str, request: Request, format: str = Query("html", pattern="^(html|txt)$"),
              principal: Principal = Depends(require_scope(READ)),
              audit: AuditScope = Depends(audited("read", "DocumentReference"))) -> Response:
    """The review page (HTML: evidence links, unsupported statements marked) or the plain text."""
    with request.app.state.database.session() as session:
        view = get_note(session, principal, id)
        audit.patient_id = view.encounter.patient_id
        if format == "html":
            return Response(view.current.html_rendering, media_type="text/html; charset=utf-8",
                            headers={"ETag": view.etag})
        return Response(view.current.text_rendering, media_type="text/plain; charset=utf-8",
                        headers={"ETag": view.etag})
