"""`POST /v1/stream-tickets`: a single-use ticket for a browser's websocket (`?ticket=`).

A ticket is issued only for an encounter the caller may stream into (theirs, or an id not taken yet), by the
rule the websocket applies on connect, so a ticket never names another clinician's encounter.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from scribe.api import schemas
from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.bodies import BoundedRoute
from scribe.api.deps import DbSession
from scribe.api.state import service
from scribe.auth.tickets import TICKET_TTL_S, issue_ticket
from scribe.auth.tokens import Principal
from scribe.encounter_audio import ENCOUNTER_ID
from scribe.encounters import stream_target

router = APIRouter(prefix="/v1", tags=["streaming"], route_class=BoundedRoute, responses=schemas.COMMON_ERRORS)


class TicketRequest(BaseModel):
    encounter_id: str = Field(pattern=rf"^{ENCOUNTER_ID.pattern}$")


class TicketResponse(BaseModel):
    ticket: str
    expires_in: int


@router.post("/stream-tickets", response_model=TicketResponse)
def create_stream_ticket(
    body: TicketRequest,
    request: Request,
    session: DbSession,
    principal: Principal = Depends(require_scope("user/Encounter.cu")),
    audit: AuditScope = Depends(audited("token", "Encounter")),
) -> TicketResponse:
    audit.resource_id, audit.detail = body.encounter_id, "stream ticket"
    database = service(request).database
    encounter = stream_target(session, principal.subject, body.encounter_id)  # another clinician's: 403
    audit.patient_id = encounter.patient_id if encounter is not None else None
    ticket = issue_ticket(database, principal.subject, body.encounter_id)
    return TicketResponse(ticket=ticket, expires_in=TICKET_TTL_S)
