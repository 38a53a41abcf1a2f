"""A stored note: its current version, every earlier one, their renderings and the FHIR view the EHR reads.

Every change of a note adds a version (`add_version`) and rebuilds the stored DocumentReference and
Provenance (`refresh_fhir`), so the EHR side reads them without recomputing. The changes themselves,
and who may make them, are the lifecycle's (scribe/notes/lifecycle.py).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from scribe.access import check_read
from scribe.auth.tokens import Principal
from scribe.encounters import now
from scribe.errors import NotFoundError
from scribe.fhir.resources import NoteDocument, NoteStatus, RelationCode, document_reference, provenance
from scribe.notes.inputs import NoteInput
from scribe.notes.schema import SOAPNote
from scribe.render import render_note
from scribe.store.models import Encounter, Note, NoteVersion

# Stored FHIR JSON carries this in place of the server's base URL; responses substitute the real one.
BASE_PLACEHOLDER = "urn:scribe:base"


@dataclass
class NoteView:
    note: Note
    current: NoteVersion
    encounter: Encounter

    @property
    def etag(self) -> str:
        return f'W/"{self.note.version}"'

    def soap(self) -> SOAPNote:
        return SOAPNote.model_validate_json(self.current.body)

    def to_json(self) -> dict[str, Any]:
        """The REST shape of docs/interfaces.md: `{"id", "version", "status", "encounter_id", "note"}` and
        lifecycle facts."""
        out: dict[str, Any] = {
            "id": self.note.id,
            "version": self.note.version,
            "status": self.note.status,
            "encounter_id": self.note.encounter_id,
            "note_type": self.note.note_type,
            "note": self.soap().to_dict(),
            "created_at": self.note.created_at.isoformat(timespec="seconds"),
            "updated_at": self.note.updated_at.isoformat(timespec="seconds"),
        }
        if self.note.signed_at:
            out["signed_at"] = self.note.signed_at.isoformat(timespec="seconds")
            out["signed_by"] = self.note.signed_by
        if self.note.relation:
            out["relates_to"] = {"code": self.note.relation, "note_id": self.note.related_note_id}
            out["reason"] = self.note.reason
        if self.current.addendum:
            out["addendum"] = self.current.addendum
        return out


def current_version(session: Session, note: Note) -> NoteVersion:
    current = session.get(NoteVersion, (note.id, note.version))
    assert current is not None, "a note always has its current version"
    return current


def get_note(session: Session, principal: Principal, note_id: str, *, lock: bool = False) -> NoteView:
    query = select(Note).where(Note.id == note_id)
    note = session.scalars(query.with_for_update() if lock else query).first()
    if note is None:
        raise NotFoundError(f"no note {note_id}")
    encounter = session.get(Encounter, note.encounter_id)
    assert encounter is not None
    check_read(principal, encounter.clinician)
    return NoteView(note, current_version(session, note), encounter)


def notes_of_encounter(session: Session, encounter_id: str) -> list[Note]:
    return list(session.scalars(select(Note).where(Note.encounter_id == encounter_id).order_by(Note.created_at)))


def rendered(
    soap: SOAPNote, note_input: NoteInput | None, status: str, patient: str | None, addendum: str | None
) -> tuple[str, str]:
    transcript = note_input.transcript if note_input else None
    text = render_note(soap, transcript, template=soap.note_type, fmt="txt", status=status, patient=patient)
    html = render_note(soap, transcript, template=soap.note_type, fmt="html", status=status, patient=patient)
    if addendum:
        text = f"ADDENDUM\n{addendum}\n\n{text}"
        html = html.replace(
            "<main", f'<section class="addendum"><h2>Addendum</h2><p>{_escape(addendum)}</p></section>\n<main', 1
        )
    return text, html


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def add_version(
    session: Session,
    note: Note,
    soap: SOAPNote,
    note_input: NoteInput | None,
    *,
    created_by: str,
    transcript_id: int | None,
    addendum: str | None,
    encounter: Encounter,
) -> NoteVersion:
    text, html = rendered(soap, note_input, note.status, encounter.patient_name, addendum)
    version = NoteVersion(
        note_id=note.id,
        version=note.version,
        body=soap.to_json(),
        addendum=addendum,
        text_rendering=text,
        html_rendering=html,
        transcript_id=transcript_id,
        created_by=created_by,
        created_at=now(),
    )
    session.add(version)
    return version


def refresh_fhir(session: Session, note: Note, encounter: Encounter) -> None:
    """Rebuild the stored DocumentReference and Provenance after any change the EHR side can see.

    A note whose encounter names no patient yet has no FHIR view (US Core needs a subject).
    """
    current = current_version(session, note)
    soap = SOAPNote.model_validate_json(current.body)
    note.fhir_version += 1
    if not note.patient_id:
        note.document_json = note.provenance_json = None
        return
    relates_to: list[tuple[RelationCode, str]] = (
        # the column holds only the RelationCode _new_note was given
        [(cast(RelationCode, note.relation), note.related_note_id)] if note.relation and note.related_note_id else []
    )
    doc = NoteDocument(
        note_id=note.id,
        version=note.fhir_version,
        status=cast(NoteStatus, note.status),  # the column holds only the statuses this module writes
        note_type=note.note_type,
        patient_id=note.patient_id,
        author=note.clinician,
        created_at=note.created_at,
        updated_at=note.updated_at,
        text=current.text_rendering,
        html=current.html_rendering,
        engine=soap.metadata.engine,
        model=soap.metadata.model,
        encounter_id=note.encounter_id,
        patient_name=encounter.patient_name,
        signed_by=note.signed_by,
        signed_at=note.signed_at,
        period_start=encounter.created_at,
        relates_to=relates_to,
    )
    note.document_json = json.dumps(document_reference(doc, BASE_PLACEHOLDER))
    note.provenance_json = json.dumps(provenance(doc))


def ehr_document(session: Session, note: Note) -> dict[str, Any]:
    """The DocumentReference as pushed to an EHR: renderings inline as base64 (the EHR need not call back)."""
    resource: dict[str, Any] = json.loads(note.document_json or "{}")  # a DocumentReference refresh_fhir stored
    current = current_version(session, note)
    for content in resource.get("content", []):
        attachment = content["attachment"]
        body = current.text_rendering if attachment["contentType"] == "text/plain" else current.html_rendering
        attachment.pop("url", None)
        attachment["data"] = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return resource


def versions(session: Session, view: NoteView) -> list[NoteVersion]:
    """Every version of the note, oldest first (`view` was loaded through the access rule)."""
    return list(
        session.scalars(select(NoteVersion).where(NoteVersion.note_id == view.note.id).order_by(NoteVersion.version))
    )
