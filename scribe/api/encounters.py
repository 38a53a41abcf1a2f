"""`/v1/encounters`: create and list encounters; upload audio, records and images; draft the note."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from scribe.api.audit_trail import AuditScope, audited
from scribe.api.auth import require_scope
from scribe.api.bodies import (BoundedRoute, Spooled, media_type, read_body, read_json, read_multipart_file,
                               spool_body, validated)
from scribe.auth.tokens import Principal
from scribe.documents import generate_note, set_patient
from scribe.encounters import (add_image, add_records, audio_span, create_encounter, current_transcript,
                               encounter_context, encounter_json, get_encounter, list_encounters, save_transcript,
                               store_upload, upload_spool_dir)
from scribe.errors import BadInputError, ForbiddenError, NotFoundError, UnsupportedMediaTypeError
from scribe.text import OneLineText
from streaming.audio_store import EncounterAudio

router = APIRouter(prefix="/v1/encounters", tags=["encounters"], route_class=BoundedRoute)
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
    id: str | None = Field(default=None, description="optional client-chosen id ([A-Za-z0-9._-]{1,64})")


class NoteOptions(BaseModel):
    engine: Literal["auto", "extractive", "medgemma", "openai"] | None = None
    template: str = "progress_note"


def _database(request: Request):
    return request.app.state.database


@router.post("", status_code=201)
def create(body: EncounterIn, request: Request, principal: Principal = Depends(require_scope(WRITE)),
           audit: AuditScope = Depends(audited("create", "Encounter"))) -> dict[str, Any]:
    audit.patient_id = body.patient.id
    with _database(request).session() as session, session.begin():
        encounter = create_encounter(session, principal, patient_id=body.patient.id, patient_name=body.patient.name,
                                     mode=body.mode, encounter_id=body.id)
        audit.resource_id = encounter.id
        return encounter_json(encounter)


class EncounterPatch(BaseModel):
    patient: PatientIn


@router.patch("/{id}")
def update(id: str, body: EncounterPatch, request: Request, principal: Principal = Depends(require_scope(WRITE)),
           audit: AuditScope = Depends(audited("update", "Encounter"))) -> dict[str, Any]:
    """Name or correct the patient (a streamed encounter starts without one); refused once a note is signed."""
    if not body.patient.id:
        raise BadInputError("patient.id is required")
    with _database(request).session() as session, session.begin():
        encounter = get_encounter(session, principal, id)
        if principal.kind != "user" or encounter.clinician != principal.subject:
            raise ForbiddenError("only the encounter's clinician can change it")
        set_patient(session, encounter, body.patient.id, body.patient.name)
        audit.patient_id = encounter.patient_id
        return encounter_json(encounter)


@router.get("")
def list_(request: Request, status: str | None = None, patient: str | None = None,
          q: str | None = Query(None, max_length=100, description="text in the patient's id or name"),
          count: int = Query(50, alias="_count", ge=1, le=500), offset: int = Query(0, alias="_offset", ge=0),
          principal: Principal = Depends(require_scope(READ)),
          audit: AuditScope = Depends(audited("search", "Encounter"))) -> dict[str, Any]:
    audit.patient_id = patient
    with _database(request).session() as session:
        rows, total = list_encounters(session, principal, status=status, patient_id=patient, text=q, limit=count,
                                      offset=offset)
        return {"total": total, "encounters": [encounter_json(e) for e in rows]}


@router.get("/{id}")
def read(id: str, request: Request, principal: Principal = Depends(require_scope(READ)),
         audit: AuditScope = Depends(audited("read", "Encounter"))) -> dict[str, Any]:
    from scribe.documents import notes_of_encounter

    with _database(request).session() as session:
        encounter = get_encounter(session, principal, id)
        audit.patient_id = encounter.patient_id
        out = encounter_json(encounter)
        out["notes"] = [{"id": n.id, "status": n.status, "version": n.version, "relation": n.relation,
                         "related_note_id": n.related_note_id} for n in notes_of_encounter(session, id)]
        current = current_transcript(session, id)
        out["transcript"] = None if current is None else {"id": current[0], "engine": current[1].engine,
                                                          "duration_s": current[1].duration_s,
                                                          "segments": len(current[1].segments)}
    # a stream that resumes this encounter must use the same format (a browser records at that rate)
    streamed = EncounterAudio.stored_format(request.app.state.settings.audio_dir, id)
    out["stream_format"] = None if streamed is None else {
        "sample_rate": streamed.sample_rate, "encoding": streamed.encoding, "channels": streamed.channels}
    return out


@router.get("/{id}/context")
def context(id: str, request: Request, principal: Principal = Depends(require_scope(READ)),
            audit: AuditScope = Depends(audited("read", "Encounter"))) -> dict[str, Any]:
    """What the attached records and images say: medications, problems, allergies, observations, image labels."""
    with _database(request).session() as session:
        encounter = get_encounter(session, principal, id)
        audit.patient_id = encounter.patient_id
        audit.detail = "context"
        return encounter_context(session, id)


@router.post("/{id}/audio")
async def upload_audio(id: str, request: Request, principal: Principal = Depends(require_scope(WRITE)),
                       audit: AuditScope = Depends(audited("upload", "Encounter"))) -> dict[str, Any]:
    """A recorded file (any supported format) as the raw body: spooled to disk, stored, transcribed, returned as
    the Transcript."""
    settings = request.app.state.settings
    database = _database(request)

    def check() -> None:
        with database.session() as session:
            audit.patient_id = get_encounter(session, principal, id).patient_id

    await asyncio.to_thread(check)
    spooled = await spool_body(request, settings.max_audio_bytes, upload_spool_dir(settings), settings.node_id)
    try:
        if not spooled.size:
            raise BadInputError("the audio body is empty")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(upload_executor, _transcribe_upload, request, principal, id, spooled)
    finally:
        spooled.discard()  # nothing to do once it was moved into place


def _transcribe_upload(request: Request, principal: Principal, encounter_id: str, spooled: Spooled) -> dict[str, Any]:
    """Decode (bad audio is refused, nothing kept), store durably, then transcribe: a failing engine loses nothing."""
    from scribe.asr import choose_engine, load_engine
    from scribe.audio import AudioLimits, decoded_seconds
    from scribe.encounters import records_context
    from scribe.uploads import LABEL, transcribe_file

    settings = request.app.state.settings
    limits = AudioLimits.from_settings(settings)
    duration = decoded_seconds(spooled.path, limits, label=LABEL)
    with _database(request).session() as session, session.begin():
        encounter = get_encounter(session, principal, encounter_id)
        upload = store_upload(session, settings, encounter, spooled.path, size=spooled.size, sha256=spooled.sha256,
                              media_type=media_type(request) or None, duration_s=duration)
        context = records_context(session, encounter_id)
        mode = encounter.mode
    engine = load_engine(choose_engine(settings.asr_engine, mode, settings), settings)  # type: ignore[arg-type]
    transcript = transcribe_file(engine, settings.audio_dir / upload.path, limits, context)
    with _database(request).session() as session, session.begin():
        save_transcript(session, get_encounter(session, principal, encounter_id), transcript, source="upload",
                        upload_id=upload.id)
    return transcript.to_dict()


@router.get("/{id}/transcript")
def transcript(id: str, request: Request, principal: Principal = Depends(require_scope(READ)),
               audit: AuditScope = Depends(audited("read", "Encounter"))) -> dict[str, Any]:
    with _database(request).session() as session:
        encounter = get_encounter(session, principal, id)
        audit.patient_id = encounter.patient_id
        current = current_transcript(session, id)
        if current is None:
            raise NotFoundError("this encounter has no transcript yet")
        return current[1].to_dict()


@router.get("/{id}/audio")
def audio(id: str, request: Request, start: float = Query(0.0, ge=0, allow_inf_nan=False),
          end: float | None = Query(None, gt=0, allow_inf_nan=False),
          principal: Principal = Depends(require_scope(READ)),
          audit: AuditScope = Depends(audited("read", "Encounter"))) -> Response:
    """WAV of `start`..`end` seconds: what a reviewer plays to check a statement's evidence."""
    with _database(request).session() as session:
        encounter = get_encounter(session, principal, id)
        audit.patient_id = encounter.patient_id
        audit.detail = "audio"
        wav = audio_span(session, request.app.state.settings, encounter, start, end)
    return Response(wav, media_type="audio/wav")


@router.post("/{id}/records", status_code=201)
async def records(id: str, request: Request, principal: Principal = Depends(require_scope(WRITE)),
                  audit: AuditScope = Depends(audited("upload", "Bundle"))) -> dict[str, Any]:
    if media_type(request) not in RECORDS_MEDIA:
        raise UnsupportedMediaTypeError("records are a FHIR Bundle: application/fhir+json or application/json")
    raw = await read_body(request, request.app.state.settings.max_records_bytes)

    def attach() -> dict[str, Any]:
        with _database(request).session() as session, session.begin():
            encounter = get_encounter(session, principal, id)
            audit.patient_id = encounter.patient_id
            row, context = add_records(session, encounter, raw)
            if encounter.patient_id is None and context.patient_id:  # the records say whose encounter this is
                set_patient(session, encounter, context.patient_id, context.name)
                audit.patient_id = encounter.patient_id
            return {"id": row.label, "patient": context.patient_id, "medications": len(context.medications),
                    "problems": len(context.problems), "allergies": len(context.allergies),
                    "observations": len(context.observations)}

    return await asyncio.to_thread(attach)


async def _image_body(request: Request, limit: int) -> tuple[bytes, str, str | None]:
    """(bytes, media type, filename) from a raw image body or the first file of a multipart form."""
    media = media_type(request)
    if media in IMAGE_MEDIA:
        return await read_body(request, limit), media, request.headers.get("x-filename")
    if media == "multipart/form-data":
        data, kind, filename = await read_multipart_file(request, limit)
        return data, kind if kind in IMAGE_MEDIA else "application/octet-stream", filename
    raise UnsupportedMediaTypeError("images are image/png, image/jpeg, application/dicom or multipart/form-data")


@router.post("/{id}/images", status_code=201)
async def images(id: str, request: Request, principal: Principal = Depends(require_scope(WRITE)),
                 audit: AuditScope = Depends(audited("upload", "Media"))) -> dict[str, Any]:
    data, media, filename = await _image_body(request, request.app.state.settings.max_image_bytes)

    def attach() -> dict[str, Any]:
        with _database(request).session() as session, session.begin():
            encounter = get_encounter(session, principal, id)
            audit.patient_id = encounter.patient_id
            row, attachment = add_image(session, encounter, data, filename=filename, media_type=media)
            return {"id": row.label, "format": attachment.source_format, "width": attachment.width,
                    "height": attachment.height, "modality": attachment.modality, "body_part": attachment.body_part,
                    "study_date": attachment.study_date, "label": attachment.label()}

    return await asyncio.to_thread(attach)


@router.post("/{id}/note", status_code=201)
async def draft(id: str, request: Request, principal: Principal = Depends(require_scope(NOTE_WRITE)),
                audit: AuditScope = Depends(audited("generate", "DocumentReference"))) -> JSONResponse:
    """Draft the note (no body needed; optional `{"engine", "template"}`) -> the draft with `id` and `version`."""
    options = validated(NoteOptions, await read_json(request, request.app.state.settings.max_form_bytes,
                                                     required=False))

    def run() -> tuple[dict[str, Any], str]:
        with _database(request).session() as session, session.begin():
            encounter = get_encounter(session, principal, id)
            audit.patient_id = encounter.patient_id
            view = generate_note(session, request.app.state.settings, encounter, engine=options.engine,
                                 template=options.template)
            audit.resource_id = view.note.id
            return view.to_json(), view.etag

    body, etag = await asyncio.to_thread(run)
    return JSONResponse(body, status_code=201, headers={"ETag": etag, "Location": f"/v1/notes/{body['id']}"})
