"""The clinic's whole path over REST, on SQLite and PostgreSQL: encounter -> audio -> records/images -> draft ->
edit (If-Match) -> sign -> amend / addendum, with the FHIR view checked at every step."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.fhir.resources import AIAST, US_CORE_CATEGORY, US_CORE_DOCREF
from tests.accounts import enrol
from tests.conftest import SAMPLES
from tests.helpers.clinic import (
    DR_A,
    DR_B,
    EHR,
    EHR_DRAFTS,
    new_encounter,
    png,
    post_audio,
    post_records,
    spoken_encounter,
    transcribed_encounter,
)


def check_docref(resource: dict, *, doc_status: str, status: str = "current") -> None:
    assert resource["resourceType"] == "DocumentReference"
    assert resource["meta"]["profile"] == [US_CORE_DOCREF] and AIAST in resource["meta"]["security"]
    assert resource["status"] == status and resource["docStatus"] == doc_status
    assert resource["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "11506-3",
        "display": "Progress note",
    }
    assert resource["category"][0]["coding"][0]["system"] == US_CORE_CATEGORY
    assert resource["category"][0]["coding"][0]["code"] == "clinical-note"
    assert {c["attachment"]["contentType"] for c in resource["content"]} == {"text/plain", "text/html"}


@pytest.mark.slow  # transcribes the sample with the bundled Whisper
def test_full_lifecycle(api: TestClient):
    encounter = transcribed_encounter(api)
    image = api.post(f"/v1/encounters/{encounter}/images", content=png(), headers={**DR_A, "Content-Type": "image/png"})
    assert image.status_code == 201 and image.json()["id"] == "image-1"

    draft = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A)
    assert draft.status_code == 201, draft.text
    body = draft.json()
    note_id, etag = body["id"], draft.headers["etag"]
    assert body["version"] == 1 and body["status"] == "draft" and etag == 'W/"1"'
    texts = [s["text"] for s in body["note"]["medications"]]
    assert any("Amlodipine" in t for t in texts)
    assert [s["support"] for s in body["note"]["objective"]["imaging"]] == ["review"]

    # The draft is visible in FHIR as preliminary.
    docref = api.get(f"/fhir/DocumentReference/{note_id}", headers=DR_A)
    if docref.status_code != 404:  # the FHIR router may not be mounted in every build of this test
        check_docref(docref.json(), doc_status="preliminary")

    # Edit: If-Match required, stale is 412, current works and keeps history.
    edited = body["note"]
    edited["plan"].append({"text": "Return in 4 weeks.", "evidence": []})
    assert api.put(f"/v1/notes/{note_id}", json=edited, headers=DR_A).status_code == 428
    assert api.put(f"/v1/notes/{note_id}", json=edited, headers={**DR_A, "If-Match": 'W/"7"'}).status_code == 412
    assert api.put(f"/v1/notes/{note_id}", json=edited, headers={**DR_B, "If-Match": etag}).status_code == 403
    saved = api.put(f"/v1/notes/{note_id}", json=edited, headers={**DR_A, "If-Match": etag})
    assert saved.status_code == 200 and saved.json()["version"] == 2 and saved.headers["etag"] == 'W/"2"'
    added = saved.json()["note"]["plan"][-1]
    assert added["text"] == "Return in 4 weeks." and added["support"] == "unsupported"  # no evidence: flagged
    assert api.get(f"/v1/notes/{note_id}", headers={**DR_A, "If-None-Match": 'W/"2"'}).status_code == 304
    history = api.get(f"/v1/notes/{note_id}/versions", headers=DR_A).json()["versions"]
    assert [v["version"] for v in history] == [1, 2] and history[0]["created_by"] == "engine:extractive"

    # Sign: another clinician cannot; unsupported statements need confirmation; then signed and immutable.
    assert api.post(f"/v1/notes/{note_id}/sign", headers=DR_B).status_code == 403
    refused = api.post(f"/v1/notes/{note_id}/sign", headers=DR_A)
    assert refused.status_code == 409 and "not supported" in refused.json()["issue"][0]["diagnostics"]
    signed = api.post(f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": True}, headers=DR_A)
    assert signed.status_code == 200 and signed.json()["status"] == "signed" and signed.json()["signed_by"] == "dr-a"
    assert api.post(f"/v1/notes/{note_id}/sign", headers=DR_A).status_code == 409
    assert api.put(f"/v1/notes/{note_id}", json=edited, headers={**DR_A, "If-Match": 'W/"2"'}).status_code == 409
    assert api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).status_code == 409
    assert api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["status"] == "signed"
    rendering = api.get(f"/v1/notes/{note_id}/rendering?format=txt", headers=DR_A).text
    assert "Status: signed" in rendering
    history = api.get(f"/v1/notes/{note_id}/versions", headers=DR_A).json()["versions"]
    assert [v["version"] for v in history] == [1, 2, 3] and history[2]["note"] == history[1]["note"]
    from scribe.store.models import NoteVersion

    with api.app.state.database.session() as session:  # the edited draft's row is untouched by the signature
        assert "Status: draft" in session.get(NoteVersion, (note_id, 2)).text_rendering

    # Amend: reason required; the amendment replaces the note once it is signed.
    assert api.post(f"/v1/notes/{note_id}/amend", json={}, headers=DR_A).status_code == 422
    amendment = api.post(f"/v1/notes/{note_id}/amend", json={"reason": "wrong follow-up interval"}, headers=DR_A)
    assert amendment.status_code == 201
    new_id = amendment.json()["id"]
    assert amendment.json()["relates_to"] == {"code": "replaces", "note_id": note_id}
    assert api.get(f"/v1/notes/{note_id}", headers=DR_A).json()["status"] == "signed"  # until the amendment is signed
    note = amendment.json()["note"]
    note["plan"] = [s for s in note["plan"] if s["text"] != "Return in 4 weeks."]
    saved = api.put(f"/v1/notes/{new_id}", json=note, headers={**DR_A, "If-Match": amendment.headers["etag"]})
    assert saved.status_code == 200
    signed = api.post(f"/v1/notes/{new_id}/sign", headers=DR_A)
    assert signed.status_code == 200, signed.text
    assert api.get(f"/v1/notes/{note_id}", headers=DR_A).json()["status"] == "amended"
    assert api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["status"] == "amended"

    # Addendum to the signed amendment.
    assert api.post(f"/v1/notes/{new_id}/addendum", json={}, headers=DR_A).status_code == 422
    extra = api.post(f"/v1/notes/{new_id}/addendum", json={"text": "Patient called: BP 130/80 at home."}, headers=DR_A)
    assert extra.status_code == 201 and extra.json()["relates_to"] == {"code": "appends", "note_id": new_id}
    assert extra.json()["addendum"] == "Patient called: BP 130/80 at home."
    assert api.post(f"/v1/notes/{extra.json()['id']}/sign", headers=DR_A).status_code == 200


def test_encounter_rules(api: TestClient):
    encounter = new_encounter(api)
    assert api.get(f"/v1/encounters/{encounter}", headers=DR_B).status_code == 403
    assert api.get("/v1/encounters/nope", headers=DR_A).status_code == 404
    assert api.post("/v1/encounters", json={"patient": {"id": "bad id!"}}, headers=DR_A).status_code == 422
    assert api.post("/v1/encounters", json={"mode": "sing"}, headers=DR_A).status_code == 422
    assert api.post("/v1/encounters", json={"id": encounter}, headers=DR_A).status_code == 409
    assert api.post("/v1/encounters", json={}, headers=EHR).status_code == 403
    mine = api.get("/v1/encounters", headers=DR_A).json()
    assert mine["total"] == 1 and mine["encounters"][0]["id"] == encounter
    assert api.get("/v1/encounters", headers=DR_B).json()["total"] == 0
    # A note needs a transcript first.
    assert api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).status_code == 409
    assert api.get(f"/v1/encounters/{encounter}/transcript", headers=DR_A).status_code == 404


@pytest.mark.parametrize(
    "route, body, media, status",
    [
        ("audio", b"", "audio/wav", 422),
        ("audio", b"RIFF\x00\x00\x00\x00WAVEjunk", "audio/wav", 422),
        ("records", b"{not json", "application/fhir+json", 422),
        ("records", b'{"resourceType": "Bundle", "entry": "x"}', "application/json", 422),
        ("records", b"{}", "text/plain", 415),
        ("images", b"not an image", "image/png", 422),
        ("images", b"GIF89a", "image/gif", 415),
    ],
)
def test_bad_uploads_are_clear_errors(api: TestClient, route, body, media, status):
    encounter = new_encounter(api)
    response = api.post(f"/v1/encounters/{encounter}/{route}", content=body, headers={**DR_A, "Content-Type": media})
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_oversize_audio_is_413(database_target):
    settings, schema, _ = database_target
    settings = settings.model_copy(update={"max_audio_bytes": 1000})
    with TestClient(create_app(settings, load_asr=False, database_schema=schema)) as api:
        enrol(api.app.state.database, DR_A)
        encounter = new_encounter(api)
        response = post_audio(api, encounter, b"x" * 5000)
        assert response.status_code == 413 and response.json()["issue"][0]["code"] == "too-long"


@pytest.mark.slow  # transcribes the sample with the bundled Whisper
def test_records_of_another_patient_are_refused(api: TestClient):
    encounter = new_encounter(api, patient="someone-else")
    bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
    response = post_records(api, encounter, bundle)
    assert response.status_code == 422 and "not this encounter's patient" in response.text


@pytest.mark.slow  # transcribes the sample with the bundled Whisper
def test_audio_span_and_audit_trail(api: TestClient):
    import wave

    encounter = transcribed_encounter(api)
    span = api.get(f"/v1/encounters/{encounter}/audio?start=1&end=3", headers=DR_A)
    assert span.status_code == 200 and span.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(span.content)) as wav:
        assert wav.getframerate() == 16000 and abs(wav.getnframes() - 32000) <= 1
    assert api.get(f"/v1/encounters/{encounter}/audio?start=3&end=1", headers=DR_A).status_code == 422
    assert api.get(f"/v1/encounters/{encounter}/transcript", headers=DR_B).status_code == 403

    from scribe.store.models import AuditRecord

    with api.app.state.database.session() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
    actions = [(r.actor, r.action, r.resource_type, r.outcome) for r in rows]
    assert ("dr-a", "upload", "Bundle", "0") in actions and ("dr-a", "upload", "Encounter", "0") in actions
    assert ("dr-b", "read", "Encounter", "4") in actions  # the refused read is audited as a failure
    assert all(r.path and "?" not in r.path for r in rows)
    upload = next(r for r in rows if r.action == "upload" and r.resource_type == "Encounter")
    assert upload.patient_id and upload.resource_id == encounter


def test_sign_off_reaches_the_ehr_even_after_a_crash(database_target, monkeypatch: pytest.MonkeyPatch):
    """The outbox row is committed with the signature: a node that dies before delivering still delivers, once."""
    import time

    # a short back-off, not the 5 s of production: its length is tests/test_delivery.py's, here only that it ends
    monkeypatch.setattr("scribe.fhir.delivery.FIRST_RETRY_S", 0.2)

    from scribe.fhir.delivery import pending_count
    from tests.helpers.fhir import FhirServer

    settings, schema, _ = database_target
    ehr = FhirServer()
    try:
        ehr.fail_next = 100  # the EHR is down while the first node runs
        live = settings.model_copy(update={"ehr_fhir_url": ehr.url, "delivery_interval_s": 0.05})
        with TestClient(create_app(live, load_asr=False, database_schema=schema)) as api:
            enrol(api.app.state.database, DR_A)
            note_id = _signed_text_note(api)
            time.sleep(0.3)
            assert pending_count(api.app.state.database) == 1 and not ehr.resources
        ehr.fail_next = 0  # the node is gone; the EHR is back; another node starts
        with TestClient(create_app(live, load_asr=False, database_schema=schema)) as api:
            deadline = time.monotonic() + 30  # the failed message is retried after its back-off
            while pending_count(api.app.state.database) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pending_count(api.app.state.database) == 0
            [stored] = ehr.resources.values()
            assert stored["id"] == note_id and stored["docStatus"] == "final"
            assert all("data" in c["attachment"] and "url" not in c["attachment"] for c in stored["content"])
            amendment = api.post(f"/v1/notes/{note_id}/amend", json={"reason": "typo"}, headers=DR_A).json()["id"]
            assert api.post(f"/v1/notes/{amendment}/sign", headers=DR_A).status_code == 200
            deadline = time.monotonic() + 30
            while (len(ehr.resources) < 2 or pending_count(api.app.state.database)) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert ehr.resources[f"urn:scribe:note|{note_id}"]["status"] == "superseded"
        assert ehr.resources[f"urn:scribe:note|{amendment}"]["relatesTo"][0]["code"] == "replaces"
    finally:
        ehr.close()


def _signed_text_note(api: TestClient) -> str:
    encounter = spoken_encounter(api)
    note_id = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).json()["id"]
    assert api.post(f"/v1/notes/{note_id}/sign", headers=DR_A).status_code == 200
    return note_id


@pytest.mark.slow  # transcribes the sample with the bundled Whisper
def test_audio_is_deleted_after_the_retention_period(api: TestClient):
    from datetime import timedelta

    from scribe.retention import purge_expired_audio
    from scribe.store.models import AuditRecord, Encounter

    encounter = transcribed_encounter(api)
    note_id = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).json()["id"]
    assert api.post(f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": True}, headers=DR_A).status_code == 200
    settings = api.app.state.settings.model_copy(update={"audio_retention_days": 30})
    database = api.app.state.database
    assert (settings.audio_dir / encounter).is_dir()
    with database.session() as session:
        signed_at = session.get(Encounter, encounter).signed_at
    assert purge_expired_audio(database, settings, moment=signed_at + timedelta(days=29)) == 0
    assert purge_expired_audio(database, settings, moment=signed_at + timedelta(days=31)) == 1
    assert not (settings.audio_dir / encounter).exists()
    assert purge_expired_audio(database, settings, moment=signed_at + timedelta(days=32)) == 0
    assert api.get(f"/v1/encounters/{encounter}/audio?start=0&end=1", headers=DR_A).status_code == 404
    assert api.get(f"/v1/encounters/{encounter}/transcript", headers=DR_A).status_code == 200  # text stays
    with database.session() as session:
        deletions = session.scalars(select(AuditRecord).where(AuditRecord.action == "delete")).all()
    assert [(d.resource_id, d.actor_kind) for d in deletions] == [(encounter, "system")]


def test_images_as_multipart_and_dicom(api: TestClient, tmp_path: Path):
    from tests.test_attachments import dicom

    encounter = new_encounter(api)
    response = api.post(
        f"/v1/encounters/{encounter}/images", headers=DR_A, files={"file": ("cxr.png", png(), "image/png")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "image-1" and response.json()["format"] == "png"
    dicom = api.post(
        f"/v1/encounters/{encounter}/images",
        content=dicom(tmp_path).read_bytes(),
        headers={**DR_A, "Content-Type": "application/dicom"},
    )
    assert dicom.status_code == 201, dicom.text
    assert dicom.json()["id"] == "image-2" and dicom.json()["format"] == "dicom" and dicom.json()["modality"]
    empty = api.post(
        f"/v1/encounters/{encounter}/images",
        headers=DR_A,
        data={"note": "no file"},
        files={"other": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 422


def test_a_note_without_a_patient_is_not_signed_nor_shown_to_the_ehr(api: TestClient):
    """A streamed encounter starts without a patient: it is named later (PATCH, or by its records)."""
    encounter = api.post("/v1/encounters", json={"mode": "dictation"}, headers=DR_A).json()["id"]
    spoken_encounter(api, encounter, source="stream")
    note_id = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).json()["id"]
    ehr = EHR_DRAFTS  # a draft's FHIR view is for clients granted drafts
    assert api.get(f"/fhir/DocumentReference/{note_id}", headers=ehr).status_code == 404
    assert api.get(f"/fhir/DocumentReference?_id={note_id}", headers=ehr).json()["total"] == 0
    refused = api.post(f"/v1/notes/{note_id}/sign", headers=DR_A)
    assert refused.status_code == 409 and "names no patient" in refused.text
    assert api.patch(f"/v1/encounters/{encounter}", json={"patient": {"id": "pt-77"}}, headers=DR_B).status_code == 403
    named = api.patch(f"/v1/encounters/{encounter}", json={"patient": {"id": "pt-77", "name": "A B"}}, headers=DR_A)
    assert named.status_code == 200 and named.json()["patient"] == {"id": "pt-77", "name": "A B"}
    assert api.get(f"/fhir/DocumentReference/{note_id}", headers=ehr).json()["subject"]["reference"] == "Patient/pt-77"
    assert api.get(f"/fhir/DocumentReference/{note_id}", headers=EHR).status_code == 404  # a draft, to the EHR
    assert api.post(f"/v1/notes/{note_id}/sign", headers=DR_A).status_code == 200
    assert api.get(f"/fhir/DocumentReference/{note_id}", headers=EHR).status_code == 200
    changed = api.patch(f"/v1/encounters/{encounter}", json={"patient": {"id": "pt-78"}}, headers=DR_A)
    assert changed.status_code == 409


def test_records_name_the_patient_of_an_encounter_that_had_none(api: TestClient):
    encounter = api.post("/v1/encounters", json={}, headers=DR_A).json()["id"]
    bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
    assert post_records(api, encounter, bundle).status_code == 201
    assert api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["patient"]["id"] == "pt-1001"


def test_an_upload_is_kept_even_when_recognition_fails(api: TestClient, monkeypatch: pytest.MonkeyPatch):
    from scribe.errors import EngineUnavailableError
    from scribe.store.models import AudioUpload

    def broken(*_args, **_kwargs):
        raise EngineUnavailableError("the ASR engine is not available here")

    monkeypatch.setattr("scribe.asr.load_engine", broken)
    encounter = new_encounter(api)
    audio = (SAMPLES / "cardiology_followup.wav").read_bytes()
    response = post_audio(api, encounter, audio)
    assert response.status_code == 503 and response.json()["resourceType"] == "OperationOutcome"
    with api.app.state.database.session() as session:
        [upload] = session.scalars(select(AudioUpload).where(AudioUpload.encounter_id == encounter)).all()
    stored = api.app.state.settings.audio_dir / upload.path
    assert stored.read_bytes() == audio
    assert api.get(f"/v1/encounters/{encounter}/audio?start=0&end=1", headers=DR_A).status_code == 200
