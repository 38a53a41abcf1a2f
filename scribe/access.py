"""Who may see and change what: the one rule every route, the websocket and FHIR search apply.

An encounter, its audio and its notes belong to the clinician who created it. That clinician reads
and changes them; any other clinician gets a 403. A system client (an EHR) reads every clinician's
encounters and notes, as far as its route's scope allows, but changes none; and it sees a draft note
only with DRAFTS_SCOPE, because a draft is not yet part of the legal record.
"""

from __future__ import annotations

from typing import TypeVarTuple

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from scribe.auth.smart import DRAFTS_SCOPE
from scribe.auth.tokens import Principal
from scribe.errors import ForbiddenError
from scribe.store.models import Note

ANOTHER_CLINICIANS = "this encounter belongs to another clinician"

Columns = TypeVarTuple("Columns")  # what a query selects, kept through the narrowing


def is_owner(principal: Principal, owner: str) -> bool:
    """`principal` is the clinician `owner` names (a system client owns nothing)."""
    return principal.kind == "user" and principal.subject == owner


def check_read(principal: Principal, owner: str) -> None:
    """Reading an encounter of `owner` or anything in it: its clinician, or a system client."""
    if principal.kind == "user" and principal.subject != owner:
        raise ForbiddenError(ANOTHER_CLINICIANS)


def check_create(principal: Principal) -> None:
    """A new encounter is its creator's: a clinician's, never a system client's."""
    if principal.kind != "user":
        raise ForbiddenError("encounters are created by clinicians, not by system clients")


def check_change(principal: Principal, owner: str, action: str) -> None:
    """Changing an encounter of `owner` or anything in it (`action` says what, for the message): its clinician only."""
    if not is_owner(principal, owner):
        raise ForbiddenError(f"only the encounter's clinician can {action}")


def check_stream(subject: str, owner: str) -> None:
    """Appending audio to an encounter of `owner`: the websocket's ticket holder, a clinician, if it is theirs."""
    if subject != owner:
        raise ForbiddenError(ANOTHER_CLINICIANS)


def readable(query: Select[*Columns], owner: InstrumentedAttribute[str], principal: Principal) -> Select[*Columns]:
    """`query` narrowed to the rows `principal` may read, `owner` being the column naming their clinician."""
    return query.where(owner == principal.subject) if principal.kind == "user" else query


def readable_notes(query: Select[*Columns], principal: Principal) -> Select[*Columns]:
    """A note query narrowed to the notes `principal` may read: drafts hidden from a system client without
    DRAFTS_SCOPE."""
    query = readable(query, Note.clinician, principal)
    if principal.kind == "user" or principal.has_scope(DRAFTS_SCOPE):
        return query
    return query.where(Note.status != "draft")
