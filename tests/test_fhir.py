"""FHIR R4 resources for notes: valid for fhir.resources R4B and carrying every code docs/fhir.md asks for."""

import base64
from datetime import timedelta

import pytest
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance

from scribe.errors import BadInputError
from scribe.fhir.resources import binary, binary_ids, document_reference, fhir_id, provenance
from tests.helpers.fhir import DRAFTED_AT as NOW
from tests.helpers.fhir import note_document


def codes(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def test_draft_document_reference_follows_us_core():
    resource = document_reference(note_document(), "https://scribe.example/fhir")
    DocumentReference.model_validate(resource)  # R4B shape
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"]
    assert ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST") in {
        (s["system"], s["code"]) for s in resource["meta"]["security"]
    }
    assert resource["status"] == "current" and resource["docStatus"] == "preliminary"
    assert codes(resource["type"]) == {("http://loinc.org", "11506-3")}
    assert codes(resource["category"][0]) == {
        ("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note")
    }
    assert resource["subject"]["reference"] == "Patient/pt-1001"
    assert resource["author"] == [{"reference": "Practitioner/dr.jones", "display": "Dr Ana Jones"}]
    assert "authenticator" not in resource
    assert resource["identifier"][0]["value"] == "note-1"
    assert resource["context"]["period"]["start"].startswith("2026-11-24T10:15")
    contents = {c["attachment"]["contentType"]: c["attachment"]["url"] for c in resource["content"]}
    assert contents == {
        "text/plain": "https://scribe.example/fhir/Binary/note-1-text",
        "text/html": "https://scribe.example/fhir/Binary/note-1-html",
    }
    assert all(c["format"]["code"] for c in resource["content"])


def test_signed_amended_and_retracted_lifecycle():
    signed = document_reference(note_document(status="signed", version=3, signed_by="dr.jones", signed_at=NOW))
    assert signed["docStatus"] == "final" and signed["status"] == "current"
    assert signed["authenticator"]["reference"] == "Practitioner/dr.jones"
    assert signed["meta"]["versionId"] == "3"
    old = document_reference(note_document(status="amended", signed_by="dr.jones", signed_at=NOW))
    assert old["status"] == "superseded" and old["docStatus"] == "final"
    new = document_reference(note_document(note_id="note-2", relates_to=[("replaces", "note-1")]))
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": "DocumentReference/note-1"}}]
    addendum = document_reference(note_document(note_id="note-3", relates_to=[("appends", "note-1")]))
    assert addendum["relatesTo"][0]["code"] == "appends"
    retracted = document_reference(note_document(status="entered-in-error"))
    assert retracted["status"] == "entered-in-error" and retracted["docStatus"] == "entered-in-error"


def test_embedded_renderings_for_push():
    resource = document_reference(note_document(), embed=True)
    DocumentReference.model_validate(resource)
    data = {
        c["attachment"]["contentType"]: base64.b64decode(c["attachment"]["data"]).decode() for c in resource["content"]
    }
    assert data == {"text/plain": "S: chest pain", "text/html": "<p>S: chest pain</p>"}
    assert all("url" not in c["attachment"] for c in resource["content"])


def test_unknown_note_type_is_refused():
    with pytest.raises(BadInputError, match="LOINC"):
        document_reference(note_document(note_type="poem"))


def test_binary_round_trips_unicode_html():
    html = "<p>Température 38.5 °C — “quoted”</p>"
    resource = binary(binary_ids(note_document())["text/html"], "text/html", html)
    Binary.model_validate(resource)
    assert resource["contentType"] == "text/html" and resource["id"] == "note-1-html"
    assert base64.b64decode(resource["data"]).decode("utf-8") == html


def test_provenance_names_the_ai_device_and_the_signing_clinician():
    draft = provenance(note_document(engine="medgemma", model="google/medgemma-27b-text-it"))
    Provenance.model_validate(draft)
    device = draft["contained"][0]
    assert device["resourceType"] == "Device" and device["version"][0]["value"] == "google/medgemma-27b-text-it"
    assert draft["agent"][0]["who"]["reference"] == "#drafting-model"
    assert draft["target"] == [{"reference": "DocumentReference/note-1/_history/1"}]
    assert ("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE") in codes(draft["activity"])
    assert ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST") in {
        (s["system"], s["code"]) for s in draft["meta"]["security"]
    }

    signed_at = NOW + timedelta(hours=1)
    signed = provenance(note_document(status="signed", version=2, signed_by="dr.jones", signed_at=signed_at))
    Provenance.model_validate(signed)
    clinician = signed["agent"][1]
    assert clinician["who"]["reference"] == "Practitioner/dr.jones"
    assert ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "LA") in codes(clinician["type"])
    assert signed["recorded"].startswith("2026-11-24T11:30")


def test_fhir_ids_from_local_names():
    assert fhir_id("dr.jones") == "dr.jones"
    assert fhir_id("ana jones@clinic") == "ana-jones-clinic"
    with pytest.raises(BadInputError):
        fhir_id("@@@")
