"""Encounters and what is recorded in them: audio uploads, transcripts, prior records, images.

The REST API and the websocket call these functions; each takes the caller's `Principal`, so the
rule "a clinician sees only their own encounters" lives here once. System clients (EHR
integrations) read any encounter but never own one.
"""

from __future__ import annotations

import io
import json
import math
import re
import uuid
import wave
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from scribe.access import check_create, check_read, check_stream, readable
from scribe.audio import SAMPLE_RATE, decode_span
from scribe.auth.tokens import Principal
from scribe.config import Settings
from scribe.encounter_audio import is_encounter_id, store_upload_file, stream_span, upload_path
from scribe.errors import BadInputError, ConflictError, NotFoundError
from scribe.notes.attachments import Attachment, load_attachment
from scribe.notes.inputs import NoteInput
from scribe.records import PatientContext, parse_bundle, read_records
from scribe.store.db import rows_matched
from scribe.store.models import AttachmentRow, AudioUpload, Encounter, SegmentRow, TranscriptRow
from scribe.text import clean_text
from scribe.transcript import Segment, Transcript, Word, join_segment_texts

PATIENT_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")  # a FHIR logical id
MODES = ("dictation", "encounter")
# Lifecycle order; an encounter only moves forward (an amendment moves a signed one to amended).
STATUSES = ("recording", "transcribed", "drafted", "signed", "amended")
IMAGE_TYPES = {"image/png", "image/jpeg", "application/dicom"}


def now() -> datetime:
    return datetime.now(UTC)


def advance(encounter: Encounter, status: str) -> None:
    """Move the encounter forward to `status` (never back: a late transcript does not un-sign a note)."""
    if STATUSES.index(status) > STATUSES.index(encounter.status):
        encounter.status = status
    encounter.updated_at = now()


def get_encounter(session: Session, principal: Principal, encounter_id: str) -> Encounter:
    encounter = session.get(Encounter, encounter_id) if is_encounter_id(encounter_id) else None
    if encounter is None:
        raise NotFoundError(f"no encounter {encounter_id}")
    check_read(principal, encounter.clinician)
    return encounter


def create_encounter(
    session: Session,
    principal: Principal,
    *,
    patient_id: str | None,
    patient_name: str | None = None,
    mode: str = "encounter",
    encounter_id: str | None = None,
) -> Encounter:
    """A new encounter owned by the calling clinician; a system client cannot own one."""
    check_create(principal)
    if mode not in MODES:
        raise BadInputError(f"mode must be dictation or encounter, not {mode!r}")
    if patient_id is not None and not PATIENT_ID.fullmatch(patient_id):
        raise BadInputError("patient.id must be 1-64 of A-Z a-z 0-9 . - (a FHIR id)")
    clean_text(patient_name, "patient.name")
    encounter_id = encounter_id or uuid.uuid4().hex
    if not is_encounter_id(encounter_id):
        raise BadInputError("encounter id must be 1-64 of A-Z a-z 0-9 . _ -")
    if session.get(Encounter, encounter_id) is not None:
        raise ConflictError(f"encounter {encounter_id} already exists")
    return _add_encounter(session, encounter_id, principal.subject, patient_id, patient_name, mode)


def _add_encounter(
    session: Session, encounter_id: str, clinician: str, patient_id: str | None, patient_name: str | None, mode: str
) -> Encounter:
    """The new row, recording from now (both ways an encounter begins: created over REST, or by a first stream)."""
    moment = now()
    encounter = Encounter(
        id=encounter_id,
        clinician=clinician,
        patient_id=patient_id,
        patient_name=(patient_name or "").strip() or None,
        mode=mode,
        status="recording",
        created_at=moment,
        updated_at=moment,
    )
    session.add(encounter)
    session.flush()
    return encounter


def stream_target(session: Session, subject: str, encounter_id: str) -> Encounter | None:
    """The encounter `subject` may stream into: their own, or None for an id nobody has taken yet (it becomes theirs
    on connect); another clinician's is a ForbiddenError. Asked before a stream ticket is issued and on connect."""
    encounter = session.get(Encounter, encounter_id)
    if encounter is not None:
        check_stream(subject, encounter.clinician)
    return encounter


def encounter_for_stream(session: Session, subject: str, encounter_id: str) -> Encounter:
    """The websocket's encounter: created for `subject` when new (clients may pick ids), else theirs only."""
    encounter = stream_target(session, subject, encounter_id)
    if encounter is None:
        encounter = _add_encounter(session, encounter_id, subject, None, None, "encounter")
    return encounter


def list_encounters(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    patient_id: str | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Encounter], int]:
    """The caller's encounters (a system client: everyone's), newest first, with the total count.

    `text` finds encounters whose patient id or name contains it, in any letter case.
    """
    query = readable(select(Encounter), Encounter.clinician, principal)
    if status:
        if status not in STATUSES:
            raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
        query = query.where(Encounter.status == status)
    if patient_id:
        query = query.where(Encounter.patient_id == patient_id)
    if text and text.strip():
        pattern = "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(Encounter.patient_id).like(pattern, escape="\\"),
                func.lower(Encounter.patient_name).like(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Encounter.created_at.desc(), Encounter.id).limit(limit).offset(offset))
    return list(rows), total


def encounter_json(encounter: Encounter) -> dict[str, Any]:
    return {
        "id": encounter.id,
        "patient": {"id": encounter.patient_id, "name": encounter.patient_name},
        "clinician": encounter.clinician,
        "mode": encounter.mode,
        "status": encounter.status,
        "created_at": encounter.created_at.isoformat(timespec="seconds"),
        "updated_at": encounter.updated_at.isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------ audio


def store_upload(
    session: Session,
    settings: Settings,
    encounter: Encounter,
    spooled: Path,
    *,
    size: int,
    sha256: str,
    media_type: str | None,
    duration_s: float,
) -> AudioUpload:
    """Move an uploaded file (already fsynced in the spool directory) into place and record it."""
    relative = store_upload_file(settings.audio_dir, encounter.id, spooled, sha256=sha256, moment=now())
    upload = AudioUpload(
        encounter_id=encounter.id,
        path=relative,
        media_type=media_type,
        size_bytes=size,
        sha256=sha256,
        duration_s=round(duration_s, 3),
        created_at=now(),
    )
    session.add(upload)
    session.flush()
    return upload


def save_transcript(
    session: Session, encounter: Encounter, transcript: Transcript, *, source: str, upload_id: int | None = None
) -> TranscriptRow:
    """Persist a finished transcript; it becomes the encounter's current one."""
    row = TranscriptRow(
        encounter_id=encounter.id,
        source=source,
        upload_id=upload_id,
        engine=transcript.engine,
        model=transcript.model,
        language=transcript.language,
        duration_s=transcript.duration_s,
        processing_s=transcript.processing_s,
        created_at=now(),
    )
    session.add(row)
    session.flush()
    for segment in transcript.segments:
        session.add(
            SegmentRow(
                transcript_id=row.id,
                segment_id=segment.id,
                start=segment.start,
                end=segment.end,
                text=segment.text,
                speaker=segment.speaker,
                words=[
                    {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                    for w in segment.words
                ],
            )
        )
    advance(encounter, "transcribed")
    return row


def current_transcript(session: Session, encounter_id: str) -> tuple[int, Transcript] | None:
    row = session.scalars(
        select(TranscriptRow)
        .where(TranscriptRow.encounter_id == encounter_id)
        .order_by(TranscriptRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return row.id, load_transcript(session, row)


def load_transcript(session: Session, row: TranscriptRow) -> Transcript:
    segments = [
        Segment(
            s.segment_id,
            s.start,
            s.end,
            s.text,
            s.speaker,
            [Word(w["word"], w["start"], w["end"], w.get("probability")) for w in s.words or []],
        )
        for s in session.scalars(
            select(SegmentRow).where(SegmentRow.transcript_id == row.id).order_by(SegmentRow.segment_id)
        )
    ]
    return Transcript(
        text=join_segment_texts(segments),
        language=row.language,
        engine=row.engine,
        model=row.model,
        duration_s=row.duration_s,
        processing_s=row.processing_s,
        segments=segments,
    )


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def audio_span(session: Session, settings: Settings, encounter: Encounter, start: float, end: float | None) -> bytes:
    """A WAV of `start`..`end` seconds of the encounter's audio (the stream, else the newest upload)."""
    if not math.isfinite(start) or (end is not None and not math.isfinite(end)):
        raise BadInputError("start and end must be finite numbers of seconds")
    if start < 0 or (end is not None and end <= start):
        raise BadInputError("start must be >= 0 and end greater than start")
    if encounter.audio_purged_at is not None:
        raise NotFoundError("this encounter's audio was deleted under the retention policy")
    streamed = stream_span(settings.audio_dir, encounter.id, start, end)
    if streamed is not None:
        return _wav(*streamed)
    upload = session.scalars(
        select(AudioUpload).where(AudioUpload.encounter_id == encounter.id).order_by(AudioUpload.id.desc()).limit(1)
    ).first()
    if upload is None:
        raise NotFoundError("this encounter has no audio")
    return _wav(decode_span(upload_path(settings.audio_dir, upload.path), start, end, label="the upload"), SAMPLE_RATE)


# ------------------------------------------------------------------------------------------ attachments


def _next_label(session: Session, encounter_id: str, kind: str) -> str:
    count = (
        session.scalar(
            select(func.count()).where(AttachmentRow.encounter_id == encounter_id, AttachmentRow.kind == kind)
        )
        or 0
    )
    return f"{'image' if kind == 'image' else 'records'}-{count + 1}"


def add_records(session: Session, encounter: Encounter, raw: bytes) -> tuple[AttachmentRow, PatientContext]:
    """Attach a FHIR Bundle of prior records; it must parse, validate, and be about this encounter's patient."""
    context = read_records(raw)
    if encounter.patient_id and context.patient_id and context.patient_id != encounter.patient_id:
        raise BadInputError(
            f"the records are about Patient/{context.patient_id}, not this encounter's patient ({encounter.patient_id})"
        )
    row = AttachmentRow(
        encounter_id=encounter.id,
        kind="records",
        label=_next_label(session, encounter.id, "records"),
        filename=None,
        media_type="application/fhir+json",
        data=raw,
        created_at=now(),
    )
    session.add(row)
    session.flush()
    return row, context


def add_image(
    session: Session, encounter: Encounter, raw: bytes, *, filename: str | None, media_type: str
) -> tuple[AttachmentRow, Attachment]:
    """Attach a PNG, JPEG or DICOM image (checked by decoding it, its file name and DICOM texts clean text);
    stored exactly as uploaded."""
    label = _next_label(session, encounter.id, "image")
    attachment = load_attachment(raw, label, filename)
    row = AttachmentRow(
        encounter_id=encounter.id,
        kind="image",
        label=label,
        filename=filename,
        media_type=media_type,
        data=raw,
        created_at=now(),
    )
    session.add(row)
    session.flush()
    return row, attachment


def _merge(contexts: list[PatientContext]) -> PatientContext | None:
    """Several record bundles of one patient read as one context (later bundles add, never remove)."""
    if not contexts:
        return None
    merged = contexts[0]
    for extra in contexts[1:]:
        merged.medications += extra.medications
        merged.problems += extra.problems
        merged.allergies += extra.allergies
        merged.observations += extra.observations
        for name in ("patient_id", "name", "birth_date", "gender", "patient_reference"):
            if getattr(merged, name) is None:
                setattr(merged, name, getattr(extra, name))
    return merged


def records_context(session: Session, encounter_id: str) -> PatientContext | None:
    rows = session.scalars(
        select(AttachmentRow)
        .where(AttachmentRow.encounter_id == encounter_id, AttachmentRow.kind == "records")
        .order_by(AttachmentRow.id)
    )
    return _merge([parse_bundle(json.loads(row.data.decode("utf-8"))) for row in rows])


def encounter_context(session: Session, encounter_id: str) -> dict[str, Any]:
    """What scribe understood of the attached records and images, as the reviewer sees it."""
    context = records_context(session, encounter_id) or PatientContext()
    rows = list(
        session.scalars(
            select(AttachmentRow).where(AttachmentRow.encounter_id == encounter_id).order_by(AttachmentRow.id)
        )
    )
    images = [load_attachment(row.data, row.label, row.filename) for row in rows if row.kind == "image"]
    return {
        "patient": {
            "id": context.patient_id,
            "name": context.name,
            "birth_date": context.birth_date,
            "gender": context.gender,
        },
        "records": [row.label for row in rows if row.kind == "records"],
        "medications": [asdict(m) for m in context.medications],
        "problems": [asdict(p) for p in context.problems],
        "allergies": [asdict(a) for a in context.allergies],
        "observations": [asdict(o) for o in context.observations],
        "images": [
            {
                "id": a.id,
                "label": a.label(),
                "format": a.source_format,
                "modality": a.modality,
                "body_part": a.body_part,
                "study_date": a.study_date,
            }
            for a in images
        ],
    }


@dataclass
class EncounterMaterial:
    """Everything a note is drafted from, as stored."""

    transcript_id: int
    note_input: NoteInput


def encounter_input(session: Session, encounter: Encounter) -> EncounterMaterial | None:
    """The current transcript with the records and images, or None before there is a transcript."""
    current = current_transcript(session, encounter.id)
    if current is None:
        return None
    transcript_id, transcript = current
    images = session.scalars(
        select(AttachmentRow)
        .where(AttachmentRow.encounter_id == encounter.id, AttachmentRow.kind == "image")
        .order_by(AttachmentRow.id)
    )
    attachments = [load_attachment(row.data, row.label, row.filename) for row in images]
    return EncounterMaterial(transcript_id, NoteInput(transcript, records_context(session, encounter.id), attachments))


def note_material(session: Session, encounter: Encounter) -> EncounterMaterial:
    material = encounter_input(session, encounter)
    if material is None:
        raise ConflictError("this encounter has no transcript yet: stream or upload its audio first")
    return material


# ------------------------------------------------------------------------------------------ stream leases


def acquire_stream(session: Session, encounter_id: str, holder: str, *, ttl_s: float) -> bool:
    """Claim the right to stream into the encounter (one connection at a time, across every node).

    One conditional UPDATE: free, expired or already ours -> ours until now + ttl. `holder` is
    "<node id>/<connection id>": a crashed node's leases run out within `ttl_s` (the node's
    `stream_lease_s`), or are released at once when that node starts again (`release_node_streams`).
    """
    moment = now()
    claimed = session.execute(
        update(Encounter)
        .where(
            Encounter.id == encounter_id,
            or_(
                Encounter.stream_holder.is_(None),
                Encounter.stream_lease_until < moment,
                Encounter.stream_holder == holder,
            ),
        )
        .values(stream_holder=holder, stream_lease_until=moment + timedelta(seconds=ttl_s))
    )
    return rows_matched(claimed) == 1


def release_node_streams(session: Session, node_id: str) -> int:
    """At start-up: leases this node held before it stopped (or was killed) are void; returns how many."""
    result = session.execute(
        update(Encounter)
        .where(Encounter.stream_holder.like(f"{node_id}/%"))
        .values(stream_holder=None, stream_lease_until=None)
    )
    return rows_matched(result)


def release_stream(session: Session, encounter_id: str, holder: str) -> None:
    session.execute(
        update(Encounter)
        .where(Encounter.id == encounter_id, Encounter.stream_holder == holder)
        .values(stream_holder=None, stream_lease_until=None)
    )
