"""`/v1/encounters`: create and list encounters; upload audio, records and images; draft the note."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from scribe.access import check_change
from scribe.api import schemas
from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.bodies import BoundedRoute, Spooled, media_type, read_body, read_multipart_file, spool_body
from scribe.api.deps import AppSettings, DbSession, encounter_for, in_encounter
from scribe.api.state import service
from scribe.audio import AudioLimits, decoded_seconds
from scribe.auth.tokens import Principal
from scribe.drain import NodeDrain
from scribe.encounter_audio import ENCOUNTER_ID, EncounterAudio, upload_spool_dir
from scribe.encounters import (
    add_image,
    add_records,
    audio_span,
    create_encounter,
    current_transcript,
    encounter_context,
    encounter_json,
    list_encounters,
    store_upload,
)
from scribe.errors import BadInputError, NotFoundError, UnsupportedMediaTypeError
from scribe.notes.lifecycle import generate_note, set_patient
from scribe.notes.registry import configured_note_engines
from scribe.store.models import Encounter
from scribe.text import OneLineText
from scribe.uploads import LABEL as UPLOAD_LABEL
from scribe.uploads import create_job, upload_state

router = APIRouter(
    prefix="/v1/encounters",
    tags=["encounters"],
    route_class=BoundedRoute,
    responses={**schemas.COMMON_ERRORS, **schemas.errors(404)},
)
# Uploads are transcribed one at a time beside the streams (Whisper already uses every core).
upload_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-asr")

WRITE = "user/Encounter.cu"
READ = "user/Encounter.rs"
NOTE_WRITE = "user/DocumentReference.cu"
IMAGE_MEDIA = {"image/png", "image/jpeg", "application/dicom"}
RECORDS_MEDIA = {"application/json", "application/fhir+json"}


class PatientIn(BaseModel):
    id: str | None = Field(default=None, max_length=64)
    name: OneLineText | None = Field(default=None, max_length=255)


class EncounterIn(BaseModel):
    patient: PatientIn = Field(default_factory=PatientIn)
    mode: Literal["dictation", "encounter"] = "encounter"
    id: str | None = Field(default=None, description=f"optional client-chosen id ({ENCOUNTER_ID.pattern})")


class NoteOptions(BaseModel):
    engine: Literal["auto", "extractive", "medgemma", "openai"] | None = None
    template: str = "progress_note"


@router.post("", status_code=201, response_model=schemas.Encounter, responses=schemas.errors(409))
def create(
    body: EncounterIn,
    session: DbSession,
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("create", "Encounter")),
) -> dict[str, Any]:
    audit.patient_id = body.patient.id
    encounter = create_encounter(
        session,
        principal,
        patient_id=body.patient.id,
        patient_name=body.patient.name,
        mode=body.mode,
        encounter_id=body.id,
    )
    audit.resource_id = encounter.id
    return encounter_json(encounter)


class EncounterPatch(BaseModel):
    patient: PatientIn


@router.patch("/{id}", response_model=schemas.Encounter, responses=schemas.errors(409))
def update(
    body: EncounterPatch,
    session: DbSession,
    encounter: Encounter = Depends(encounter_for(WRITE, "update")),
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("update", "Encounter")),
) -> dict[str, Any]:
    """Name or correct the patient (a streamed encounter starts without one); refused once a note is signed."""
    if not body.patient.id:
        raise BadInputError("patient.id is required")
    check_change(principal, encounter.clinician, "change it")
    set_patient(session, encounter, body.patient.id, body.patient.name)
    audit.patient_id = encounter.patient_id
    return encounter_json(encounter)


@router.get("", response_model=schemas.EncounterPage)
def list_(
    session: DbSession,
    status: str | None = None,
    patient: str | None = None,
    q: str | None = Query(None, max_length=100, description="text in the patient's id or name"),
    count: int = Query(50, alias="_count", ge=1, le=500),
    offset: int = Query(0, alias="_offset", ge=0, le=10**9),
    principal: Principal = Depends(require_scope(READ)),
    audit: AuditScope = Depends(audited("search", "Encounter")),
) -> dict[str, Any]:
    audit.patient_id = patient
    rows, total = list_encounters(
        session, principal, status=status, patient_id=patient, text=q, limit=count, offset=offset
    )
    return {"total": total, "encounters": [encounter_json(e) for e in rows]}


@router.get("/{id}", response_model=schemas.EncounterDetail)
def read(
    session: DbSession,
    settings: AppSettings,
    encounter: Encounter = Depends(encounter_for(READ, "read")),
) -> dict[str, Any]:
    from scribe.notes.stored import notes_of_encounter

    out = encounter_json(encounter)
    out["notes"] = [
        {
            "id": n.id,
            "status": n.status,
            "version": n.version,
            "relation": n.relation,
            "related_note_id": n.related_note_id,
        }
        for n in notes_of_encounter(session, encounter.id)
    ]
    current = current_transcript(session, encounter.id)
    out["transcript"] = (
        None
        if current is None
        else {
            "id": current[0],
            "engine": current[1].engine,
            "duration_s": current[1].duration_s,
            "segments": len(current[1].segments),
        }
    )
    out["upload"] = upload_state(session, encounter.id)
    # a stream that resumes this encounter must use the same format (a browser records at that rate)
    streamed = EncounterAudio.stored_format(settings.audio_dir, encounter.id)
    out["stream_format"] = (
        None
        if streamed is None
        else {"sample_rate": streamed.sample_rate, "encoding": streamed.encoding, "channels": streamed.channels}
    )
    return out


@router.get("/{id}/context", response_model=schemas.EncounterContext)
def context(
    session: DbSession,
    encounter: Encounter = Depends(encounter_for(READ, "read")),
    audit: AuditScope = Depends(audited("read", "Encounter")),
) -> dict[str, Any]:
    """What the attached records and images say: medications, problems, allergies, observations, image labels."""
    audit.detail = "context"
    return encounter_context(session, encounter.id)


@router.post(
    "/{id}/audio",
    response_model=schemas.Transcript,
    responses={
        202: {"model": schemas.UploadPending, "description": "still transcribing: the upload's state"},
        **schemas.errors(503),
    },
    openapi_extra=schemas.body(
        dict.fromkeys(
            (
                "audio/wav",
                "audio/flac",
                "audio/ogg",
                "audio/mpeg",
                "audio/webm",
                "audio/mp4",
                "application/octet-stream",
            ),
            schemas.BINARY,
        ),
        "the recording, in any format scribe decodes",
    ),
)
async def upload_audio(
    id: str,
    request: Request,
    settings: AppSettings,
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("upload", "Encounter")),
) -> Response:
    """A recorded file (any supported format) as the raw body: spooled to disk, checked, stored with its
    transcription job, transcribed; answers the Transcript. When that takes longer than
    `SCRIBE_UPLOAD_WAIT_S`, answers 202 with the upload's state instead: the job goes on (on any node,
    even after a restart) and `GET /v1/encounters/{id}` shows how it ends."""
    database = service(request).database
    await in_encounter(request, principal, id, audit, lambda session, encounter: None)  # refused before any byte
    spooled = await spool_body(
        request, settings.max_audio_bytes, upload_spool_dir(settings.audio_dir), settings.node_id
    )
    try:
        if not spooled.size:
            raise BadInputError("the audio body is empty")
        # decoded once, keeping nothing (bad audio is refused, nothing kept), before the transaction that stores it
        duration = await asyncio.to_thread(
            decoded_seconds, spooled.path, AudioLimits.from_settings(settings), label=UPLOAD_LABEL
        )
        job_id = await in_encounter(
            request, principal, id, audit, functools.partial(_store_upload, request, spooled, duration)
        )
    finally:
        spooled.discard()  # nothing to do once it was moved into place
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.upload_wait_s
    drain = service(request).drain
    transcript = None
    if not drain.draining:  # a draining node leaves the job to the queue: another node transcribes it
        work = loop.run_in_executor(upload_executor, _transcribe_now, database, settings, job_id)
        work.add_done_callback(lambda done: done.cancelled() or done.exception())  # recorded on the job either way
        transcript = await drain.until_draining(asyncio.shield(work), settings.upload_wait_s)
    if transcript is None and not drain.draining:  # still waiting its turn, or another node took it: watch the job
        transcript = await _watch_job(database, job_id, deadline, drain)
    if transcript is None:

        def state() -> dict[str, Any] | None:
            with database.session() as session:
                return upload_state(session, id)

        return JSONResponse(
            {"encounter_id": id, "upload": await asyncio.to_thread(state)},
            status_code=202,
            headers={"Location": f"/v1/encounters/{id}"},
        )
    return JSONResponse(transcript)


def _store_upload(request: Request, spooled: Spooled, duration: float, session: Session, encounter: Encounter) -> int:
    """Move the checked upload into place and record it with its transcription job in the caller's transaction;
    the job's id."""
    upload = store_upload(
        session,
        service(request).settings,
        encounter,
        spooled.path,
        size=spooled.size,
        sha256=spooled.sha256,
        media_type=media_type(request) or None,
        duration_s=duration,
    )
    return create_job(session, upload).id


def _transcribe_now(database, settings, job_id: int) -> dict[str, Any] | None:
    """Run the new upload's job on this node (the Transcript), or None when another node claimed it first."""
    from scribe.uploads import claim_job, job_holder, run_job

    holder = job_holder(settings.node_id)
    with database.session() as session, session.begin():
        claimed = claim_job(session, holder, job_id=job_id)
    if claimed is None:
        return None
    transcript = run_job(database, settings, job_id, holder)
    return None if transcript is None else transcript.to_dict()


async def _watch_job(database, job_id: int, deadline: float, drain: NodeDrain) -> dict[str, Any] | None:
    """The job's Transcript once it is done (wherever it ran), None at `deadline` or once the node drains; a failed
    job is its error."""
    from scribe.encounters import load_transcript
    from scribe.errors import EngineUnavailableError
    from scribe.store.models import TranscriptRow, UploadJob

    def look() -> tuple[str, str | None, dict[str, Any] | None]:
        with database.session() as session:
            job = session.get(UploadJob, job_id)
            row = session.get(TranscriptRow, job.transcript_id) if job.transcript_id else None
            return job.state, job.reason, None if row is None else load_transcript(session, row).to_dict()

    loop = asyncio.get_running_loop()
    while loop.time() < deadline and not drain.draining:
        state, reason, transcript = await asyncio.to_thread(look)
        if state == "done":
            return transcript
        if state == "failed":
            raise EngineUnavailableError(f"the upload could not be transcribed: {reason}")
        await asyncio.sleep(min(0.5, max(deadline - loop.time(), 0)))
    return None


@router.get("/{id}/transcript", response_model=schemas.Transcript)
def transcript(session: DbSession, encounter: Encounter = Depends(encounter_for(READ, "read"))) -> dict[str, Any]:
    current = current_transcript(session, encounter.id)
    if current is None:
        raise NotFoundError("this encounter has no transcript yet")
    return current[1].to_dict()


@router.get(
    "/{id}/audio",
    response_class=Response,
    responses={200: schemas.content("audio/wav", {"type": "string", "format": "binary"}, "the span as 16-bit WAV")},
)
def audio(
    session: DbSession,
    settings: AppSettings,
    start: float = Query(0.0, ge=0, allow_inf_nan=False),
    end: float | None = Query(None, gt=0, allow_inf_nan=False),
    encounter: Encounter = Depends(encounter_for(READ, "read")),
    audit: AuditScope = Depends(audited("read", "Encounter")),
) -> Response:
    """WAV of `start`..`end` seconds: what a reviewer plays to check a statement's evidence."""
    audit.detail = "audio"
    return Response(audio_span(session, settings, encounter, start, end), media_type="audio/wav")


@router.post(
    "/{id}/records",
    status_code=201,
    response_model=schemas.RecordsAttached,
    openapi_extra=schemas.body(
        dict.fromkeys(RECORDS_MEDIA, schemas.FHIR_RESOURCE), "a FHIR R4 Bundle of the patient's prior records"
    ),
)
async def records(
    id: str,
    request: Request,
    settings: AppSettings,
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("upload", "Bundle")),
) -> dict[str, Any]:
    if media_type(request) not in RECORDS_MEDIA:
        raise UnsupportedMediaTypeError("records are a FHIR Bundle: application/fhir+json or application/json")
    raw = await read_body(request, settings.max_records_bytes)

    def attach(session: Session, encounter: Encounter) -> dict[str, Any]:
        row, context = add_records(session, encounter, raw)
        if encounter.patient_id is None and context.patient_id:  # the records say whose encounter this is
            set_patient(session, encounter, context.patient_id, context.name)
            audit.patient_id = encounter.patient_id
        return {
            "id": row.label,
            "patient": context.patient_id,
            "medications": len(context.medications),
            "problems": len(context.problems),
            "allergies": len(context.allergies),
            "observations": len(context.observations),
        }

    return await in_encounter(request, principal, id, audit, attach)


async def _image_body(request: Request, limit: int) -> tuple[bytes, str, str | None]:
    """(bytes, media type, filename) from a raw image body or the first file of a multipart form.

    `X-Filename` is read as UTF-8, as a form's file name is (HTTP hands headers over as Latin-1), so a name's
    characters are judged as the client meant them."""
    media = media_type(request)
    if media in IMAGE_MEDIA:
        filename = request.headers.get("x-filename")
        if filename is not None:
            try:
                filename = filename.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                pass  # Latin-1 text it is
        return await read_body(request, limit), media, filename
    if media == "multipart/form-data":
        data, kind, filename = await read_multipart_file(request, limit)
        return data, kind if kind in IMAGE_MEDIA else "application/octet-stream", filename
    raise UnsupportedMediaTypeError("images are image/png, image/jpeg, application/dicom or multipart/form-data")


@router.post(
    "/{id}/images",
    status_code=201,
    response_model=schemas.ImageAttached,
    openapi_extra=schemas.body(
        {**dict.fromkeys(sorted(IMAGE_MEDIA), schemas.BINARY), "multipart/form-data": schemas.MULTIPART_FILE},
        "a PNG, JPEG or DICOM image, raw (name it with X-Filename) or as the file of a form",
    ),
)
async def images(
    id: str,
    request: Request,
    settings: AppSettings,
    principal: Principal = Depends(require_scope(WRITE)),
    audit: AuditScope = Depends(audited("upload", "Media")),
) -> dict[str, Any]:
    data, media, filename = await _image_body(request, settings.max_image_bytes)

    def attach(session: Session, encounter: Encounter) -> dict[str, Any]:
        row, attachment = add_image(session, encounter, data, filename=filename, media_type=media)
        return {
            "id": row.label,
            "format": attachment.source_format,
            "width": attachment.width,
            "height": attachment.height,
            "modality": attachment.modality,
            "body_part": attachment.body_part,
            "study_date": attachment.study_date,
            "label": attachment.label(),
        }

    return await in_encounter(request, principal, id, audit, attach)


@router.post(
    "/{id}/note",
    status_code=201,
    response_model=schemas.Note,
    response_model_exclude_none=True,
    responses=schemas.errors(409, 503),
)
async def draft(
    id: str,
    request: Request,
    settings: AppSettings,
    response: Response,
    options: NoteOptions | None = None,
    principal: Principal = Depends(require_scope(NOTE_WRITE)),
    audit: AuditScope = Depends(audited("generate", "DocumentReference")),
) -> dict[str, Any]:
    """Draft the note (no body needed; optional `{"engine", "template"}`) -> the draft with `id` and `version`."""
    chosen = options or NoteOptions()
    configured = configured_note_engines(settings)
    if chosen.engine not in (None, "auto", *configured):
        raise BadInputError(
            f"the {chosen.engine} note engine is not configured on this server; choose one of {', '.join(configured)}"
        )

    def run(session: Session, encounter: Encounter) -> tuple[dict[str, Any], str]:
        view = generate_note(session, settings, encounter, engine=chosen.engine, template=chosen.template)
        audit.resource_id = view.note.id
        return view.to_json(), view.etag

    body, etag = await in_encounter(request, principal, id, audit, run)
    response.headers["ETag"], response.headers["Location"] = etag, f"/v1/notes/{body['id']}"
    return body
