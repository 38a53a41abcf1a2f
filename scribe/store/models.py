"""Tables. Everything several nodes must agree on lives here, never in one process's memory.

Encounters own everything recorded in them; a note keeps every version ever saved
(`note_versions`), so an edit or an amendment never destroys what was there before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy import DateTime as _DateTime
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class DateTime(TypeDecorator[datetime]):
    """Timestamps always come back timezone-aware in UTC (SQLite otherwise returns naive datetimes)."""

    impl = _DateTime(timezone=True)
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__()

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: scribe stores timezone-aware UTC timestamps only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class AppSecret(Base):
    """Secrets generated once per installation (the token signing key), shared by every node."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamTicket(Base):
    """Single-use, short-lived websocket tickets for browsers (which cannot set Authorization headers)."""

    __tablename__ = "stream_tickets"

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))
    encounter_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# ------------------------------------------------------------------------------------------ people and systems


class User(Base):
    """A local clinician or administrator account (`scribe users add`)."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: OIDC-only account
    role: Mapped[str] = mapped_column(String(16), default="clinician")  # clinician | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Client(Base):
    """A SMART Backend Services client (an EHR integration) and the public keys it signs assertions with."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    jwks: Mapped[str] = mapped_column(Text)  # JSON Web Key Set, public keys only
    scopes: Mapped[str] = mapped_column(Text)  # space-separated scopes it may be granted
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsedAssertion(Base):
    """`jti`s of client assertions already redeemed, kept until they expire: a replayed JWT is refused."""

    __tablename__ = "used_assertions"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebSession(Base):
    """A signed-in browser: the cookie carries a random id, only its hash is stored (plus the CSRF token)."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("users.username"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------------------------------------ clinical content


class Encounter(Base):
    """One visit or dictation: status recording -> transcribed -> drafted -> signed -> amended."""

    __tablename__ = "encounters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinician: Mapped[str] = mapped_column(String(255), index=True)  # the owning clinician's username
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    patient_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mode: Mapped[str] = mapped_column(String(16), default="encounter")  # dictation | encounter
    status: Mapped[str] = mapped_column(String(16), default="recording")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    audio_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Which connection streams into the encounter, on whichever node: one at a time, renewed while it lasts.
    stream_holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stream_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AudioUpload(Base):
    """Audio posted over REST; the bytes live in a file under the shared audio directory, fsynced first."""

    __tablename__ = "audio_uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    encounter_id: Mapped[str] = mapped_column(String(64), ForeignKey("encounters.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024))  # relative to the audio directory
    media_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TranscriptRow(Base):
    """A finished transcript of an encounter (from the stream or an upload); the newest one is current."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    encounter_id: Mapped[str] = mapped_column(String(64), ForeignKey("encounters.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # stream | upload
    upload_id: Mapped[int | None] = mapped_column(ForeignKey("audio_uploads.id"), nullable=True)
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    processing_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentRow(Base):
    __tablename__ = "transcript_segments"

    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # {word, start, end, probability}


class AttachmentRow(Base):
    """An image (kept as uploaded) or a prior-records bundle attached to an encounter."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    encounter_id: Mapped[str] = mapped_column(String(64), ForeignKey("encounters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | records
    label: Mapped[str] = mapped_column(String(64))  # "image-1" (what statements cite) or "records-1"
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    media_type: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("encounter_id", "label", name="uq_attachment_label"),)


class Note(Base):
    """A clinical note (one FHIR DocumentReference). Its content is the newest row of `note_versions`."""

    __tablename__ = "notes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(64), ForeignKey("encounters.id"), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clinician: Mapped[str] = mapped_column(String(255))
    note_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # draft | signed | amended | entered-in-error
    version: Mapped[int] = mapped_column(Integer)  # current content version (REST ETag W/"<version>")
    fhir_version: Mapped[int] = mapped_column(Integer)  # bumps on every change the FHIR view shows
    relation: Mapped[str | None] = mapped_column(String(16), nullable=True)  # replaces | appends
    related_note_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it amends/appends
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    signed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    document_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # DocumentReference, built on change
    provenance_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_notes_patient_date", "patient_id", "created_at"),
        Index("ix_notes_patient_status", "patient_id", "status"),
        Index("ix_notes_patient_type", "patient_id", "note_type"),
    )


class NoteVersion(Base):
    """Every saved state of a note's content: drafts, edits, the signed text. Never updated, never deleted."""

    __tablename__ = "note_versions"

    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)  # SOAPNote JSON
    addendum: Mapped[str | None] = mapped_column(Text, nullable=True)  # free text of an addendum note
    text_rendering: Mapped[str] = mapped_column(Text)
    html_rendering: Mapped[str] = mapped_column(Text)
    transcript_id: Mapped[int | None] = mapped_column(ForeignKey("transcripts.id"), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))  # username, or "engine:<name>" for a draft
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SignOff(Base):
    """A clinician's signature on one version of a note."""

    __tablename__ = "signoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    signer: Mapped[str] = mapped_column(String(255))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attestation: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditRecord(Base):
    """Who did what to which patient's data, when, and how it ended (exposed as FHIR AuditEvent)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)  # username or client id; None: unknown
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | system | anonymous
    action: Mapped[str] = mapped_column(String(32))  # read | search | create | update | upload | generate | ...
    resource_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(2))  # FHIR AuditEvent.outcome: 0, 4, 8, 12
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    path: Mapped[str | None] = mapped_column(String(255), nullable=True)  # route template, never query values
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)  # no PHI


class UploadJob(Base):
    """The transcription of one stored upload: done once, by whichever node holds its lease.

    Written in the transaction that records the upload, so audio that is stored is always
    transcribed: a node that dies mid-way loses its lease (`holder` "<node id>/<uuid>",
    renewed while it works) and another node, or the same one restarted, takes the job over.
    """

    __tablename__ = "upload_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("audio_uploads.id"), unique=True)
    encounter_id: Mapped[str] = mapped_column(String(64), ForeignKey("encounters.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))  # transcribing | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)  # why it failed; never PHI
    transcript_id: Mapped[int | None] = mapped_column(ForeignKey("transcripts.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_upload_jobs_due", "state", "next_attempt_at"),)
