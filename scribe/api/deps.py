"""What a route works with, as FastAPI dependencies: the settings, the request's unit of work in the database,
and the encounter or note its path names, loaded through the access rule with the audit record told whose it is.

A route that reads a body first (uploads, records, edits) must not hold a database connection while the bytes
arrive, so it reads the body, then does the same in a worker thread with `in_encounter` or `in_note`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.state import service
from scribe.auth.tokens import Principal
from scribe.config import Settings
from scribe.encounters import get_encounter
from scribe.notes.stored import NoteView, get_note
from scribe.store.models import Encounter

T = TypeVar("T")


def _settings(request: Request) -> Settings:
    return service(request).settings


def _unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns (before the answer leaves), rolled back
    if it raises."""
    with service(request).database.session() as session, session.begin():
        yield session


AppSettings = Annotated[Settings, Depends(_settings)]
# scope="function": the transaction ends as the route returns, so a client never reads before it is committed
DbSession = Annotated[Session, Depends(_unit_of_work, scope="function")]


def _encounter(session: Session, principal: Principal, encounter_id: str, audit: AuditScope) -> Encounter:
    """The encounter through the access rule; the audit record names its patient."""
    encounter = get_encounter(session, principal, encounter_id)
    audit.patient_id = encounter.patient_id
    return encounter


def _noted(audit: AuditScope, view: NoteView) -> NoteView:
    """The audit record names the note loaded (through the access rule) and its patient."""
    audit.patient_id = view.encounter.patient_id
    audit.resource_id = view.note.id
    return view


@functools.cache
def encounter_for(scope: str, action: str) -> Callable[..., Encounter]:
    """Dependency factory: the path's encounter, which the caller holding `scope` may read (404/403 otherwise);
    the request is audited as `action` on it, with its patient."""

    def load(
        id: str,
        session: DbSession,
        principal: Principal = Depends(require_scope(scope)),
        audit: AuditScope = Depends(audited(action, "Encounter")),
    ) -> Encounter:
        return _encounter(session, principal, id, audit)

    return load


@functools.cache
def note_for(scope: str, action: str) -> Callable[..., NoteView]:
    """Dependency factory: the path's note with its current version, as `encounter_for` loads an encounter."""

    def load(
        id: str,
        session: DbSession,
        principal: Principal = Depends(require_scope(scope)),
        audit: AuditScope = Depends(audited(action, "DocumentReference")),
    ) -> NoteView:
        return _noted(audit, get_note(session, principal, id))

    return load


async def in_encounter(
    request: Request,
    principal: Principal,
    encounter_id: str,
    audit: AuditScope,
    work: Callable[[Session, Encounter], T],
) -> T:
    """`work` on the encounter in one transaction on a worker thread, after the route has read its body."""

    def run() -> T:
        with service(request).database.session() as session, session.begin():
            return work(session, _encounter(session, principal, encounter_id, audit))

    return await asyncio.to_thread(run)


async def in_note(request: Request, audit: AuditScope, work: Callable[[Session], NoteView]) -> NoteView:
    """`work` (which loads the note through the access rule) in one transaction on a worker thread; the audit
    record names the note and its patient."""

    def run() -> NoteView:
        with service(request).database.session() as session, session.begin():
            return _noted(audit, work(session))

    return await asyncio.to_thread(run)
