"""The note lifecycle: draft -> edit -> sign -> amend or addendum, every version kept (scribe/notes/stored.py).

Rules enforced here, whoever calls: only the encounter's clinician edits and signs; a signed
version is immutable (edits are a conflict); an edit names the version it changes (If-Match);
an amendment is a new note that `replaces` the signed one, which becomes `amended` (FHIR
`superseded`) once the amendment is signed; an addendum is a new note that `appends`. The FHIR
DocumentReference and Provenance are rebuilt on every change, and on sign-off the push to the EHR is
queued in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from scribe.access import check_change
from scribe.auth.tokens import Principal
from scribe.config import Settings
from scribe.encounters import advance, encounter_input, note_material, now
from scribe.errors import (
    BadInputError,
    ConflictError,
    PreconditionFailedError,
    PreconditionRequiredError,
)
from scribe.fhir.resources import (
    NOTE_TYPES,
    RelationCode,
)
from scribe.notes.draft import draft_note
from scribe.notes.grounding import ground_note
from scribe.notes.inputs import NoteInput
from scribe.notes.schema import SOAPNote
from scribe.notes.stored import NoteView, add_version, ehr_document, get_note, notes_of_encounter, refresh_fhir
from scribe.store.models import Encounter, Note, SignOff
from scribe.text import check_strings, clean_text


def _new_note(
    session: Session,
    encounter: Encounter,
    soap: SOAPNote,
    note_input: NoteInput | None,
    *,
    created_by: str,
    transcript_id: int | None,
    relation: RelationCode | None = None,
    related: Note | None = None,
    reason: str | None = None,
    addendum: str | None = None,
) -> NoteView:
    moment = now()
    note = Note(
        id=uuid.uuid4().hex,
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        clinician=encounter.clinician,
        note_type=soap.note_type,
        status="draft",
        version=1,
        fhir_version=0,
        relation=relation,
        related_note_id=related.id if related else None,
        reason=reason,
        created_at=moment,
        updated_at=moment,
    )
    session.add(note)
    session.flush()
    current = add_version(
        session,
        note,
        soap,
        note_input,
        created_by=created_by,
        transcript_id=transcript_id,
        addendum=addendum,
        encounter=encounter,
    )
    session.flush()
    refresh_fhir(session, note, encounter)
    return NoteView(note, current, encounter)


def generate_note(
    session: Session,
    settings: Settings,
    encounter: Encounter,
    *,
    engine: str | None = None,
    template: str = "progress_note",
) -> NoteView:
    """Draft (or re-draft) the encounter's note from its current transcript, records and images.

    An unsigned draft gets a new version (the old one is kept); a signed note is never redrafted.
    """
    if template not in NOTE_TYPES:
        raise BadInputError(f"unknown note type {template!r}; known: {', '.join(NOTE_TYPES)}")
    material = note_material(session, encounter)
    soap = draft_note(material.note_input, settings, engine=engine, template=template)
    created_by = f"engine:{soap.metadata.engine}"
    originals = [n for n in notes_of_encounter(session, encounter.id) if n.relation is None]
    if any(n.status != "draft" for n in originals):
        raise ConflictError("this encounter's note is signed; amend it or add an addendum instead")
    if originals:
        note = originals[-1]
        note.version += 1
        note.note_type = template
        note.updated_at = now()
        current = add_version(
            session,
            note,
            soap,
            material.note_input,
            created_by=created_by,
            transcript_id=material.transcript_id,
            addendum=None,
            encounter=encounter,
        )
        session.flush()
        refresh_fhir(session, note, encounter)
        view = NoteView(note, current, encounter)
    else:
        view = _new_note(
            session, encounter, soap, material.note_input, created_by=created_by, transcript_id=material.transcript_id
        )
    advance(encounter, "drafted")
    return view


def _note_input(session: Session, encounter: Encounter) -> NoteInput | None:
    """The encounter's material for re-grounding and rendering an edited note (None without a transcript)."""
    material = encounter_input(session, encounter)
    return material.note_input if material else None


def _check_if_match(view: NoteView, if_match: str | None) -> None:
    if if_match is None:
        raise PreconditionRequiredError('this change needs If-Match: W/"<version>" (the ETag you read)')
    wanted = [tag.strip() for tag in if_match.split(",")]
    if "*" not in wanted and view.etag not in wanted and f'"{view.note.version}"' not in wanted:
        raise PreconditionFailedError(f"the note changed since you read it: it is now at {view.etag}")


def edit_note(session: Session, principal: Principal, note_id: str, body: Any, if_match: str | None) -> NoteView:
    """Save the clinician's edit as a new version; the grounding check runs again on what they wrote."""
    view = get_note(session, principal, note_id, lock=True)
    check_change(principal, view.encounter.clinician, "edit this note")
    if view.note.status != "draft":
        raise ConflictError(f"this note is {view.note.status}; a signed version never changes (amend it instead)")
    _check_if_match(view, if_match)
    soap = _parse_soap(body.get("note", body) if isinstance(body, dict) else body, view)
    note_input = _note_input(session, view.encounter)
    if note_input is not None:
        soap = ground_note(soap, note_input)
    note = view.note
    note.version += 1
    note.updated_at = now()
    addendum = body.get("addendum", view.current.addendum) if isinstance(body, dict) else view.current.addendum
    if addendum is not None and not isinstance(addendum, str):
        raise BadInputError("addendum must be text")
    clean_text(addendum, "addendum", multiline=True)
    current = add_version(
        session,
        note,
        soap,
        note_input,
        created_by=principal.subject,
        transcript_id=view.current.transcript_id,
        addendum=addendum,
        encounter=view.encounter,
    )
    session.flush()
    refresh_fhir(session, note, view.encounter)
    return NoteView(note, current, view.encounter)


def sign_note(
    session: Session,
    settings: Settings,
    principal: Principal,
    note_id: str,
    *,
    if_match: str | None = None,
    confirm_unsupported: bool = False,
    attestation: str | None = None,
) -> NoteView:
    """Sign the current version; an amendment's sign-off supersedes the note it replaces.

    Unsupported statements, and statements that conflict with the patient's records, block the signature
    unless the clinician confirms them explicitly.
    """
    from scribe.fhir.delivery import enqueue

    clean_text(attestation, "attestation", multiline=True)
    view = get_note(session, principal, note_id, lock=True)
    check_change(principal, view.encounter.clinician, "sign this note")
    if view.note.status != "draft":
        raise ConflictError(f"this note is already {view.note.status}")
    if if_match is not None:
        _check_if_match(view, if_match)
    if not view.encounter.patient_id:
        raise ConflictError("the encounter names no patient: set it (PATCH /v1/encounters/{id}) before signing")
    statements = view.soap().statements()
    unsupported = sum(s.support == "unsupported" for s in statements)
    conflicting = sum(s.support == "conflict" for s in statements)
    if (unsupported or conflicting) and not confirm_unsupported:
        raise ConflictError(
            f"{unsupported} statement(s) are not supported by their evidence and {conflicting} "
            "conflict with the patient's records: fix them, or sign with "
            '{"confirm_unsupported": true}'
        )
    moment = now()
    note = view.note
    note.status, note.signed_at, note.signed_by, note.updated_at = "signed", moment, principal.subject, moment
    # The signed text is a version of its own (same content, renderings that say "signed"): rows never change.
    note.version += 1
    current = add_version(
        session,
        note,
        view.soap(),
        _note_input(session, view.encounter),
        created_by=principal.subject,
        transcript_id=view.current.transcript_id,
        addendum=view.current.addendum,
        encounter=view.encounter,
    )
    session.add(
        SignOff(
            note_id=note.id, version=note.version, signer=principal.subject, signed_at=moment, attestation=attestation
        )
    )
    session.flush()
    refresh_fhir(session, note, view.encounter)
    outbox = []
    if note.relation == "replaces" and note.related_note_id:
        old = session.get(Note, note.related_note_id, with_for_update=True)
        if old is not None and old.status == "signed":
            old.status, old.updated_at = "amended", moment
            refresh_fhir(session, old, view.encounter)
            outbox.append((old, True))
        advance(view.encounter, "amended")
    else:
        advance(view.encounter, "signed")
        view.encounter.signed_at = view.encounter.signed_at or moment
    outbox.insert(0, (note, False))
    if settings.ehr_fhir_url:
        for queued, replace in outbox:
            enqueue(
                session,
                ehr_document(session, queued),
                note_id=queued.id,
                version=queued.fhir_version,
                replace_existing=replace,
            )
    return NoteView(note, current, view.encounter)


def _parse_soap(payload: Any, view: NoteView) -> SOAPNote:
    """A clinician's SOAPNote for this note: its type and drafting metadata stay the note's own."""
    try:
        soap = SOAPNote.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"not a SOAPNote: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    for path, statements in soap.sections():
        for index, statement in enumerate(statements):
            check_strings(
                statement.model_dump(exclude={"evidence", "support", "change"}, exclude_none=True), f"{path}[{index}]"
            )
    soap.note_type = view.note.note_type
    soap.metadata = view.soap().metadata
    return soap


def _signed_original(session: Session, principal: Principal, note_id: str, action: str) -> NoteView:
    view = get_note(session, principal, note_id, lock=True)
    check_change(principal, view.encounter.clinician, f"{action} this note")
    if view.note.status != "signed":
        raise ConflictError(f"this note is {view.note.status}: only signed notes are amended or get addenda")
    return view


def amend_note(
    session: Session, principal: Principal, note_id: str, *, reason: str | None, body: Any = None
) -> NoteView:
    """Start an amendment: a new draft that will replace the signed note once it is signed."""
    view = _signed_original(session, principal, note_id, "amend")
    if not reason or not reason.strip():
        raise BadInputError("an amendment needs a reason")
    clean_text(reason, "reason", multiline=True)
    open_amendment = session.scalars(
        select(Note).where(Note.related_note_id == view.note.id, Note.relation == "replaces", Note.status == "draft")
    ).first()
    if open_amendment is not None:
        raise ConflictError(f"an amendment of this note is already in progress: note {open_amendment.id}")
    soap = view.soap() if body is None else _parse_soap(body, view)
    note_input = _note_input(session, view.encounter)
    if note_input is not None:
        soap = ground_note(soap, note_input)
    return _new_note(
        session,
        view.encounter,
        soap,
        note_input,
        created_by=principal.subject,
        transcript_id=view.current.transcript_id,
        relation="replaces",
        related=view.note,
        reason=reason.strip(),
        addendum=view.current.addendum,
    )


def add_addendum(
    session: Session, principal: Principal, note_id: str, *, text: str | None, reason: str | None = None
) -> NoteView:
    """A new draft note that `appends` to a signed one, carrying the addendum text."""
    view = _signed_original(session, principal, note_id, "add an addendum to")
    if not text or not text.strip():
        raise BadInputError("an addendum needs its text")
    clean_text(text, "text", multiline=True)
    clean_text(reason, "reason", multiline=True)
    previous = view.soap()
    soap = SOAPNote(note_type=view.note.note_type, metadata=previous.metadata.model_copy())
    return _new_note(
        session,
        view.encounter,
        soap,
        None,
        created_by=principal.subject,
        transcript_id=view.current.transcript_id,
        relation="appends",
        related=view.note,
        reason=(reason or "").strip() or None,
        addendum=text.strip(),
    )


def set_patient(session: Session, encounter: Encounter, patient_id: str, patient_name: str | None) -> None:
    """Name (or correct) the encounter's patient while nothing is signed; its notes follow."""
    from scribe.encounters import PATIENT_ID

    if not PATIENT_ID.fullmatch(patient_id):
        raise BadInputError("patient.id must be 1-64 of A-Z a-z 0-9 . - (a FHIR id)")
    clean_text(patient_name, "patient.name")
    notes = notes_of_encounter(session, encounter.id)
    if any(n.status != "draft" for n in notes) and patient_id != encounter.patient_id:
        raise ConflictError("a note of this encounter is signed: its patient can no longer change")
    encounter.patient_id = patient_id
    encounter.patient_name = (patient_name or "").strip() or encounter.patient_name
    encounter.updated_at = now()
    for note in notes:
        note.patient_id = patient_id
        refresh_fhir(session, note, encounter)
