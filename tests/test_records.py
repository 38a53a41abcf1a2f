import json
from pathlib import Path

import pytest

from scribe.errors import RecordsError
from scribe.records import load_records, parse_bundle, spoken_drug_name
from tests.conftest import SAMPLES


def test_sample_bundle_parses_into_context():
    context = load_records(SAMPLES / "cardiology_followup.bundle.json")
    assert context.patient_id == "pt-1001" and context.name == "Maria Alvarez"
    assert context.gender == "female" and context.birth_date == "1956-03-14"
    assert [m.name for m in context.medications] == ["apixaban", "metoprolol", "amlodipine", "atorvastatin"]
    assert context.medications[0].display == "apixaban 5 MG Oral Tablet"
    assert context.medications[0].dosage == "5 mg twice daily" and context.medications[0].status == "active"
    assert context.medications[0].resource_id == "MedicationStatement/cardiology_followup-med-1"
    assert [(p.code, p.status) for p in context.problems] == [("I48.91", "active"), ("I10", "active")]
    assert context.problems[0].system == "http://hl7.org/fhir/sid/icd-10-cm"
    assert [(a.substance, a.reaction) for a in context.allergies] == [("Penicillin", "Hives")]
    assert context.observations[0].value == "150/90"


def test_hotwords_are_deduplicated_in_order():
    context = parse_bundle({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "a",
                      "medicationCodeableConcept": {"text": "Metformin 500 MG Oral Tablet"}}},
        {"resource": {"resourceType": "MedicationStatement", "id": "b",
                      "medicationCodeableConcept": {"text": "metformin hydrochloride 1000 MG Oral Tablet"}}},
        {"resource": {"resourceType": "Condition", "id": "c", "code": {"text": "Hypertension"}}},
        {"resource": {"resourceType": "AllergyIntolerance", "id": "d", "code": {"text": "Penicillin"}}},
    ]})
    assert context.hotwords() == ["metformin", "Hypertension", "Penicillin"]


def test_medication_reference_resolution():
    context = parse_bundle({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"display": "lisinopril 10 MG Oral Tablet"}]}}},
        {"resource": {"resourceType": "MedicationStatement", "id": "s1", "medicationReference": {"reference": "Medication/m1"}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "r1", "medicationReference": {"reference": "#c1"},
                      "contained": [{"resourceType": "Medication", "id": "c1", "code": {"text": "warfarin 5 MG Oral Tablet"}}]}},
        {"resource": {"resourceType": "MedicationRequest", "id": "r2",
                      "medicationReference": {"reference": "Medication/unknown", "display": "Eliquis"}}},
    ]})
    assert [m.name for m in context.medications] == ["lisinopril", "warfarin", "eliquis"]


def test_unknown_resources_and_entered_in_error_are_skipped():
    context = parse_bundle({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Practitioner", "id": "p"}},
        {"resource": {"resourceType": "MedicationStatement", "id": "x", "status": "entered-in-error",
                      "medicationCodeableConcept": {"text": "digoxin"}}},
        {"fullUrl": "urn:uuid:1234", "resource": {"resourceType": "Condition", "code": {"text": "Asthma"}}},
    ]})
    assert context.medications == [] and context.problems[0].resource_id == "urn:uuid:1234"


def test_single_resource_is_read_as_a_bundle_of_one():
    context = parse_bundle({"resourceType": "Condition", "id": "c", "code": {"text": "Gout"}})
    assert [p.name for p in context.problems] == ["Gout"]


def test_observation_values():
    context = parse_bundle({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Observation", "id": "o1", "code": {"text": "Heart rate"},
                      "valueQuantity": {"value": 72, "unit": "/min"}, "effectiveDateTime": "2026-01-02"}},
        {"resource": {"resourceType": "Observation", "id": "o2", "code": {"text": "Blood pressure"}, "component": [
            {"valueQuantity": {"value": 120, "unit": "mm[Hg]"}}, {"valueQuantity": {"value": 80, "unit": "mm[Hg]"}}]}},
    ]})
    assert [(o.value, o.unit) for o in context.observations] == [("72", "/min"), ("120/80", "mm[Hg]")]


@pytest.mark.parametrize(
    ("display", "name"),
    [
        ("metformin hydrochloride 500 MG Oral Tablet", "metformin"),
        ("24 HR tamsulosin hydrochloride 0.4 MG Extended Release Oral Capsule", "tamsulosin"),
        ("Levothyroxine Sodium 0.075 MG Oral Tablet", "levothyroxine"),
        ("insulin glargine 100 UNT/ML Injectable Solution", "insulin glargine"),
        ("albuterol 0.09 MG/ACTUAT Metered Dose Inhaler [ProAir]", "albuterol"),
        ("atorvastatin calcium 40 MG Oral Tablet", "atorvastatin"),
        ("Eliquis", "eliquis"),
    ],
)
def test_spoken_drug_names(display, name):
    assert spoken_drug_name(display) == name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a FHIR Bundle object, got JSON list"),
        ('{"entry": []}', "no resourceType"),
        ('{"resourceType": "Bundle", "entry": {}}', "Bundle.entry must be a list"),
        ('{"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]}', r"entry\[0\] has no resource object"),
        ('{"resourceType": "Bundle", "entry": [{"resource": {"id": "1"}}]}', r"entry\[0\].resource has no resourceType"),
        ('{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition", "code": "asthma"}}]}',
         r"entry\[0\] \(Condition\) is malformed"),
    ],
)
def test_malformed_bundles(tmp_path: Path, content, message):
    path = tmp_path / "bundle.json"
    path.write_text(content)
    with pytest.raises(RecordsError, match=message) as info:
        load_records(path)
    assert str(path) in str(info.value)


def test_missing_and_binary_files(tmp_path: Path):
    with pytest.raises(RecordsError, match="no such file"):
        load_records(tmp_path / "nope.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(RecordsError, match="cannot be read|not JSON"):
        load_records(tmp_path / "bin.json")


def test_every_sample_bundle_mentions_its_drugs():
    for bundle in SAMPLES.glob("*.bundle.json"):
        context = load_records(bundle)
        reference = bundle.with_name(bundle.name.replace(".bundle.json", ".txt")).read_text().lower()
        assert any(m.name in reference for m in context.medications)
        assert json.loads(bundle.read_text())["type"] == "collection"
