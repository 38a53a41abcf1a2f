"""The EHR's view over `/fhir`: reads, the checklist's searches, paging, _revinclude, ETags, errors, isolation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance

from scribe.api.app import create_app
from scribe.auth.smart import DRAFTS_SCOPE
from scribe.encounters import save_transcript
from scribe.fhir.resources import AIAST, US_CORE_CATEGORY, US_CORE_DOCREF
from scribe.notes.inputs import transcript_from_text
from scribe.store.models import Encounter, Note
from tests.accounts import bearer as suite_bearer
from tests.accounts import enrol

PUBLIC_URL = "https://scribe.example.org"
DIALOGUE = (
    "[doctor] your blood pressure is 148 over 92 today .\n"
    "[patient] i take lisinopril 10 mg daily .\n"
    "[doctor] for your hypertension , increase lisinopril to 20 mg daily .\n"
)


# This module's app has a public URL, so its tokens must name it as their audience.
bearer = partial(suite_bearer, audience=PUBLIC_URL)
DR_A, DR_B = bearer("dr-a"), bearer("dr-b")
EHR = bearer("ehr-1", ("system/DocumentReference.rs", "system/Provenance.rs"))
EHR_DRAFTS = bearer("ehr-drafts", ("system/DocumentReference.rs", "system/Provenance.rs", DRAFTS_SCOPE))


@pytest.fixture
def api(database_target):
    settings, schema, _ = database_target
    with TestClient(
        create_app(settings.model_copy(update={"public_url": PUBLIC_URL}), load_asr=False, database_schema=schema)
    ) as client:
        enrol(client.app.state.database, DR_A, DR_B, EHR, EHR_DRAFTS)
        yield client


def drafted_note(api: TestClient, patient: str, headers=DR_A) -> str:
    encounter = api.post("/v1/encounters", json={"patient": {"id": patient}}, headers=headers).json()["id"]
    with api.app.state.database.session() as session, session.begin():
        save_transcript(session, session.get(Encounter, encounter), transcript_from_text(DIALOGUE), source="upload")
    return api.post(f"/v1/encounters/{encounter}/note", headers=headers).json()["id"]


def signed_note(api: TestClient, patient: str, headers=DR_A) -> str:
    note_id = drafted_note(api, patient, headers)
    assert api.post(f"/v1/notes/{note_id}/sign", headers=headers).status_code == 200
    return note_id


def backdate(api: TestClient, note_id: str, when: datetime) -> None:
    """Move a note's date (the search's `date`) and rebuild its FHIR view, as if written then."""
    from scribe.notes.stored import refresh_fhir

    with api.app.state.database.session() as session, session.begin():
        note = session.get(Note, note_id)
        note.created_at = when
        refresh_fhir(session, note, session.get(Encounter, note.encounter_id))


def search(api: TestClient, query: str, headers=EHR) -> dict:
    response = api.get(f"/fhir/DocumentReference?{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    Bundle.model_validate(body)
    return body


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def test_read_document_binary_provenance(api: TestClient):
    note_id = signed_note(api, "pt-1")
    response = api.get(f"/fhir/DocumentReference/{note_id}", headers=EHR)
    assert response.status_code == 200
    doc = response.json()
    DocumentReference.model_validate(doc)
    assert doc["meta"]["profile"] == [US_CORE_DOCREF] and AIAST in doc["meta"]["security"]
    assert doc["docStatus"] == "final" and doc["status"] == "current"
    assert doc["authenticator"]["reference"] == "Practitioner/dr-a"
    assert doc["category"][0]["coding"][0] == {
        "system": US_CORE_CATEGORY,
        "code": "clinical-note",
        "display": "Clinical Note",
    }
    assert doc["subject"]["reference"] == "Patient/pt-1"
    urls = {c["attachment"]["contentType"]: c["attachment"]["url"] for c in doc["content"]}
    assert urls["text/plain"] == f"https://scribe.example.org/fhir/Binary/{note_id}-text"
    etag = response.headers["etag"]
    assert api.get(f"/fhir/DocumentReference/{note_id}", headers={**EHR, "If-None-Match": etag}).status_code == 304

    text = api.get(f"/fhir/Binary/{note_id}-text", headers=EHR)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "Lisinopril" in text.text and "Status: signed" in text.text
    binary = api.get(f"/fhir/Binary/{note_id}-html", headers={**EHR, "Accept": "application/fhir+json"}).json()
    assert binary["resourceType"] == "Binary" and binary["contentType"] == "text/html"
    assert base64.b64decode(binary["data"]).decode().lstrip().lower().startswith("<!doctype html>")

    provenance = api.get(f"/fhir/Provenance?target=DocumentReference/{note_id}", headers=EHR).json()
    [entry] = provenance["entry"]
    Provenance.model_validate(entry["resource"])
    agents = [a["type"]["coding"][0]["code"] for a in entry["resource"]["agent"]]
    assert agents == ["author", "LA"]
    assert entry["resource"]["agent"][0]["who"]["reference"] == "#drafting-model"
    own = api.get(f"/fhir/Provenance/{entry['resource']['id']}", headers=EHR)
    assert own.status_code == 200 and own.json()["target"][0]["reference"].startswith(f"DocumentReference/{note_id}")


def test_checklist_searches_with_dates_paging_and_revinclude(api: TestClient):
    base = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    notes = [signed_note(api, "pt-7") for _ in range(5)]
    for n, note_id in enumerate(notes):
        backdate(api, note_id, base + timedelta(days=n))  # 10th .. 14th of March
    other = signed_note(api, "pt-8")

    assert ids(search(api, f"_id={notes[0]}")) == [notes[0]]
    assert set(ids(search(api, "patient=Patient/pt-7"))) == set(notes)
    assert ids(search(api, "patient=pt-8")) == [other]
    category = f"category={US_CORE_CATEGORY}|clinical-note"
    assert search(api, f"patient=pt-7&{category}")["total"] == 5
    assert search(api, "patient=pt-7&category=discharge-something")["total"] == 0
    assert set(ids(search(api, f"patient=pt-7&{category}&date=ge2026-03-12"))) == set(notes[2:])
    assert set(ids(search(api, f"patient=pt-7&{category}&date=le2026-03-11"))) == set(notes[:2])
    assert set(ids(search(api, f"patient=pt-7&{category}&date=gt2026-03-12"))) == set(notes[3:])
    assert set(ids(search(api, f"patient=pt-7&{category}&date=lt2026-03-12"))) == set(notes[:2])
    assert ids(search(api, "patient=pt-7&date=2026-03-13")) == [notes[3]]
    assert set(ids(search(api, "patient=pt-7&date=ge2026-03-11&date=lt2026-03-13"))) == set(notes[1:3])
    assert search(api, "patient=pt-7&type=http://loinc.org|11506-3")["total"] == 5
    assert search(api, "patient=pt-7&type=http://loinc.org|18842-5")["total"] == 0
    assert search(api, "patient=pt-7&status=current")["total"] == 5
    assert search(api, "patient=pt-7&status=superseded")["total"] == 0

    page = search(api, "patient=pt-7&_count=2")
    assert page["total"] == 5 and len(page["entry"]) == 2
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert links["self"].startswith("https://scribe.example.org/fhir/DocumentReference?")
    seen = ids(page)
    while "next" in links:
        assert links["next"].startswith("https://scribe.example.org/fhir/DocumentReference?")
        page = search(api, links["next"].split("?", 1)[1])
        seen += ids(page)
        links = {link["relation"]: link["url"] for link in page["link"]}
    assert sorted(seen) == sorted(notes) and len(seen) == 5
    assert ids(search(api, "patient=pt-7&_sort=date&_count=1")) == [notes[0]]  # oldest first
    assert ids(search(api, "patient=pt-7&_count=1")) == [notes[-1]]  # newest first by default

    included = search(api, "patient=pt-7&_count=2&_revinclude=Provenance:target")
    assert len(ids(included)) == 2 and len(ids(included, "include")) == 2
    assert all(
        e["resource"]["resourceType"] == "Provenance" for e in included["entry"] if e["search"]["mode"] == "include"
    )
    assert (
        "entry" not in search(api, "patient=pt-7&_summary=count")
        and search(api, "patient=pt-7&_summary=count")["total"] == 5
    )


def test_amendment_supersedes_in_fhir(api: TestClient):
    note_id = signed_note(api, "pt-3")
    amendment = api.post(f"/v1/notes/{note_id}/amend", json={"reason": "dose typo"}, headers=DR_A).json()["id"]
    assert api.post(f"/v1/notes/{amendment}/sign", headers=DR_A).status_code == 200
    old = api.get(f"/fhir/DocumentReference/{note_id}", headers=EHR).json()
    new = api.get(f"/fhir/DocumentReference/{amendment}", headers=EHR).json()
    assert old["status"] == "superseded" and new["status"] == "current" and new["docStatus"] == "final"
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{note_id}"}}]
    assert ids(search(api, "patient=pt-3&status=superseded")) == [note_id]
    assert ids(search(api, "patient=pt-3&status=current")) == [amendment]


def test_clinicians_see_only_their_notes(api: TestClient):
    mine = signed_note(api, "pt-4", DR_A)
    theirs = signed_note(api, "pt-4", DR_B)
    assert ids(search(api, "patient=pt-4", DR_A)) == [mine]
    assert ids(search(api, "patient=pt-4", DR_B)) == [theirs]
    assert api.get(f"/fhir/DocumentReference/{theirs}", headers=DR_A).status_code == 404
    assert api.get(f"/fhir/Binary/{theirs}-text", headers=DR_A).status_code == 404
    assert set(ids(search(api, "patient=pt-4", EHR))) == {mine, theirs}


@pytest.mark.parametrize(
    "path, headers, status",
    [
        ("/fhir/DocumentReference?patient=pt-1", {}, 401),
        ("/fhir/DocumentReference?patient=pt-1", {"Authorization": "Bearer junk"}, 401),
        ("/fhir/DocumentReference?patient=pt-1", bearer("ehr-2", ("system/Observation.rs",)), 403),
        ("/fhir/DocumentReference?nonsense=1", EHR, 400),
        ("/fhir/DocumentReference?date=yesterday", EHR, 400),
        ("/fhir/DocumentReference?date=2026-13-40", EHR, 400),
        ("/fhir/DocumentReference?_count=x", EHR, 400),
        ("/fhir/DocumentReference?status=final", EHR, 400),
        ("/fhir/DocumentReference/does-not-exist", EHR, 404),
        ("/fhir/Binary/nothing", EHR, 404),
        ("/fhir/Provenance", EHR, 400),
        ("/fhir/AuditEvent", EHR, 403),
        ("/fhir/AuditEvent", DR_A, 403),
    ],
)
def test_errors_are_operation_outcomes(api: TestClient, path, headers, status):
    if headers.get("Authorization", "").count(".") == 2:
        enrol(api.app.state.database, headers)  # refused for the scope or the query, not for who it names
    response = api.get(path, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_read_only_and_public_metadata(api: TestClient):
    response = api.post("/fhir/DocumentReference", json={"resourceType": "DocumentReference"}, headers=EHR)
    assert response.status_code == 405 and response.json()["resourceType"] == "OperationOutcome"
    metadata = api.get("/fhir/metadata")
    assert metadata.status_code == 200
    body = metadata.json()
    assert body["resourceType"] == "CapabilityStatement" and body["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert resources["DocumentReference"]["searchRevInclude"] == ["Provenance:target"]
    names = {p["name"] for p in resources["DocumentReference"]["searchParam"]}
    assert {"_id", "patient", "category", "date", "type", "status"} <= names
    oauth = body["rest"][0]["security"]["extension"][0]["extension"][0]
    assert oauth == {"url": "token", "valueUri": "https://scribe.example.org/auth/token"}


def test_audit_events_for_admins(api: TestClient):
    from fhir.resources.R4B.auditevent import AuditEvent

    note_id = signed_note(api, "pt-9")
    api.get(f"/fhir/DocumentReference/{note_id}", headers=EHR)
    api.get("/fhir/DocumentReference?patient=pt-9", headers=EHR)
    auditor = bearer("auditor", ("system/AuditEvent.rs",))
    enrol(api.app.state.database, auditor)
    bundle = api.get("/fhir/AuditEvent?patient=pt-9&_count=100", headers=auditor)
    assert bundle.status_code == 200, bundle.text
    events = [e["resource"] for e in bundle.json()["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    kinds = {(e["subtype"][0]["code"], e["agent"][0]["who"].get("identifier", {}).get("value")) for e in events}
    assert ("read", "ehr-1") in kinds and ("search-type", "ehr-1") in kinds and ("create", "dr-a") in kinds
    patients = {x["what"]["reference"] for e in events for x in e.get("entity", []) if x["type"]["code"] == "1"}
    assert patients == {"Patient/pt-9"}
    one = api.get(f"/fhir/AuditEvent/{events[0]['id']}", headers=auditor)
    assert one.status_code == 200 and one.json()["id"] == events[0]["id"]
    assert api.get("/fhir/DocumentReference/missing", headers=EHR).status_code == 404
    failed = api.get("/fhir/AuditEvent?outcome=4&action=read", headers=auditor).json()["entry"]
    assert [e["resource"]["outcome"] for e in failed] == ["4"]
    assert failed[0]["resource"]["entity"][0]["what"]["reference"] == "DocumentReference/missing"


def test_stored_views_validate_for_every_state(api: TestClient):
    """Draft, signed, amended, addendum: every DocumentReference and Provenance the server holds validates."""
    note_id = signed_note(api, "pt-5")
    amendment = api.post(f"/v1/notes/{note_id}/amend", json={"reason": "r"}, headers=DR_A).json()["id"]
    addendum = api.post(f"/v1/notes/{note_id}/addendum", json={"text": "seen again"}, headers=DR_A).json()["id"]
    for n in (note_id, amendment, addendum):
        doc = api.get(f"/fhir/DocumentReference/{n}", headers=EHR_DRAFTS).json()
        DocumentReference.model_validate(doc)
        prov = api.get(f"/fhir/Provenance?target=DocumentReference/{n}", headers=EHR_DRAFTS).json()["entry"][0][
            "resource"
        ]
        Provenance.model_validate(prov)
        assert AIAST in prov["meta"]["security"]
    assert (
        api.get(f"/fhir/DocumentReference/{addendum}", headers=EHR_DRAFTS).json()["relatesTo"][0]["code"] == "appends"
    )
    assert api.get(f"/fhir/DocumentReference/{amendment}", headers=EHR_DRAFTS).json()["docStatus"] == "preliminary"
    text = api.get(f"/fhir/Binary/{addendum}-text", headers=EHR_DRAFTS).text
    assert text.startswith("ADDENDUM\nseen again")


def test_the_ehr_sees_signed_notes_only_unless_granted_drafts(api: TestClient):
    """An unsigned draft is not part of the legal record: a system client without the drafts scope finds it nowhere
    (read, search, _revinclude, Binary, Provenance); the clinician and a client holding the scope see it."""
    signed = signed_note(api, "pt-6")
    draft = drafted_note(api, "pt-6")
    amendment = api.post(f"/v1/notes/{signed}/amend", json={"reason": "dose"}, headers=DR_A).json()["id"]
    drafts = (draft, amendment)

    assert ids(search(api, "patient=pt-6")) == [signed]
    assert ids(search(api, "patient=pt-6&status=current")) == [signed]
    assert search(api, f"_id={draft},{amendment}")["total"] == 0
    revincluded = search(api, "patient=pt-6&_revinclude=Provenance:target")
    assert ids(revincluded) == [signed] and len(ids(revincluded, "include")) == 1
    for note_id in drafts:
        provenance = api.get(f"/fhir/Provenance?target=DocumentReference/{note_id}", headers=EHR).json()
        assert provenance["total"] == 0
        for path in (
            f"/fhir/DocumentReference/{note_id}",
            f"/fhir/Binary/{note_id}-text",
            f"/fhir/Binary/{note_id}-html",
            f"/fhir/Provenance/{note_id}-v1",
        ):
            hidden = api.get(path, headers=EHR)
            assert hidden.status_code == 404 and hidden.json()["resourceType"] == "OperationOutcome", path
    assert api.get("/fhir/Provenance?patient=pt-6", headers=EHR).json()["total"] == 1

    for reader in (DR_A, EHR_DRAFTS):
        assert set(ids(search(api, "patient=pt-6", reader))) == {signed, *drafts}
        read = api.get(f"/fhir/DocumentReference/{draft}", headers=reader)
        assert read.status_code == 200 and read.json()["docStatus"] == "preliminary"
        assert api.get(f"/fhir/Binary/{amendment}-text", headers=reader).status_code == 200
    assert api.get(f"/fhir/DocumentReference/{draft}", headers=DR_B).status_code == 404  # and only their own

    assert api.post(f"/v1/notes/{draft}/sign", headers=DR_A).status_code == 200
    assert set(ids(search(api, "patient=pt-6"))) == {signed, draft}  # signed: now part of the record
