"""Prior records refused: a file or Bundle scribe cannot read gets one clear error naming the file, the entry and
the field; so does one whose text scribe would read holds a control character or a bidirectional override."""

import json
import re
from pathlib import Path

import pytest

from scribe.errors import RecordsError
from scribe.records import (
    load_records,
)
from tests.conftest import SAMPLES
from tests.helpers.clinic import DR_A, new_encounter, post_records
from tests.helpers.fhir import RXNORM, bundle, coded


def _entry(resource: dict) -> str:
    return json.dumps(bundle({"resourceType": "Patient", "id": "p1"}, resource))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
        ("[1, 2]", "expected a FHIR Bundle object, got JSON list"),
        ('"Bundle"', "expected a FHIR Bundle object, got JSON string"),
        ('{"entry": []}', "not a FHIR resource: no resourceType"),
        ('{"resourceType": "OperationOutcome"}', "resourceType is 'OperationOutcome': expected a Bundle"),
        ('{"resourceType": "Bundle", "entry": {}}', "Bundle.entry must be a list, got object"),
        ('{"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]}', "entry[0] has no resource object"),
        ('{"resourceType": "Bundle", "entry": ["Patient"]}', "entry[0] has no resource object"),
        ('{"resourceType": "Bundle", "entry": [{"resource": {"id": "1"}}]}', "entry[0].resource has no resourceType"),
        (
            '{"resourceType": "Bundle", "entry": [{"fullUrl": 7, "resource": {"resourceType": "Patient"}}]}',
            "entry[0].fullUrl must be a string, got number",
        ),
        (
            '{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": 7}}]}',
            "entry[0].resource.id must be a string, got number",
        ),
        (
            _entry({"resourceType": "Condition", "id": "c1", "code": "asthma"}),
            "entry[1] (Condition/c1): code must be an object, got string",
        ),
        (
            _entry({"resourceType": "Condition", "id": "c1", "code": {"coding": {"code": "J45"}}}),
            "entry[1] (Condition/c1): code.coding must be a list, got object",
        ),
        (
            _entry({"resourceType": "Condition", "id": "c1", "code": {"coding": [{"code": "J45", "display": 4}]}}),
            "entry[1] (Condition/c1): code.coding[0].display must be a string, got number",
        ),
        (
            _entry({"resourceType": "Condition", "id": "c1", "code": {"text": "Asthma"}, "clinicalStatus": ["active"]}),
            "entry[1] (Condition/c1): clinicalStatus must be a code string or a CodeableConcept object, got list",
        ),
        (
            _entry(
                {
                    "resourceType": "MedicationStatement",
                    "id": "m",
                    "status": True,
                    "medicationCodeableConcept": {"text": "aspirin"},
                }
            ),
            "entry[1] (MedicationStatement/m): status must be a code string or a CodeableConcept object, got boolean",
        ),
        (
            _entry(
                {
                    "resourceType": "MedicationStatement",
                    "id": "m",
                    "medicationCodeableConcept": {"text": "aspirin"},
                    "dosage": [{"text": 81}],
                }
            ),
            "entry[1] (MedicationStatement/m): dosage[0].text must be a string, got number",
        ),
        (
            _entry({"resourceType": "MedicationRequest", "id": "m", "medicationReference": "Medication/1"}),
            "entry[1] (MedicationRequest/m): medicationReference must be an object, got string",
        ),
        (
            _entry(
                {
                    "resourceType": "MedicationRequest",
                    "id": "m",
                    "medicationReference": {"reference": "#x"},
                    "contained": {"resourceType": "Medication"},
                }
            ),
            "entry[1] (MedicationRequest/m): contained must be a list, got object",
        ),
        (
            _entry(
                {
                    "resourceType": "AllergyIntolerance",
                    "id": "a",
                    "code": {"text": "Latex"},
                    "reaction": [{"manifestation": [{"text": ["Rash"]}]}],
                }
            ),
            "entry[1] (AllergyIntolerance/a): reaction[0].manifestation[0].text must be a string, got list",
        ),
        (
            _entry(
                {
                    "resourceType": "Observation",
                    "id": "o",
                    "code": {"text": "Weight"},
                    "valueQuantity": {"value": "80", "unit": "kg"},
                }
            ),
            "entry[1] (Observation/o): valueQuantity.value must be a number, got string",
        ),
        (
            _entry(
                {
                    "resourceType": "Observation",
                    "id": "o",
                    "code": {"text": "BP"},
                    "component": [{"valueQuantity": {"value": 120}}, {"valueQuantity": 80}],
                }
            ),
            "entry[1] (Observation/o): component[1].valueQuantity must be an object, got number",
        ),
        (
            json.dumps(bundle({"resourceType": "Patient", "id": "p", "name": [{"given": "Ana"}]})),
            "entry[0] (Patient/p): name[0].given must be a list, got string",
        ),
        (
            json.dumps(bundle({"resourceType": "Patient", "id": "p", "birthDate": 1970})),
            "entry[0] (Patient/p): birthDate must be a string, got number",
        ),
        (
            json.dumps(bundle({"resourceType": "Patient", "id": "p1"}, {"resourceType": "Patient", "id": "p2"})),
            "the bundle holds records of more than one patient (Patient/p1, Patient/p2)",
        ),
        (
            _entry(
                {
                    "resourceType": "Condition",
                    "id": "c",
                    "code": {"text": "Gout"},
                    "subject": {"reference": "https://ehr.example/fhir/Patient/p2"},
                }
            ),
            "entry[1] (Condition/c): subject refers to https://ehr.example/fhir/Patient/p2, "
            "not to the bundle's patient Patient/p1",
        ),
        (
            _entry({"resourceType": "AllergyIntolerance", "id": "a", "code": {"text": "Latex"}, "patient": "p1"}),
            "entry[1] (AllergyIntolerance/a): patient must be an object, got string",
        ),
    ],
)
def test_malformed_bundles_get_a_clear_error(tmp_path: Path, content, message):
    path = tmp_path / "bundle.json"
    path.write_text(content)
    with pytest.raises(RecordsError, match=re.escape(message)) as info:
        load_records(path)
    assert str(info.value).startswith(f"{path}: ")


def test_unreadable_files(tmp_path: Path):
    with pytest.raises(RecordsError, match="nope.json: no such file"):
        load_records(tmp_path / "nope.json")
    with pytest.raises(RecordsError, match="is a directory"):
        load_records(tmp_path)
    latin1 = '{"resourceType": "Bundle", "id": "caf\xe9"}'.encode("latin-1")
    (tmp_path / "latin1.json").write_bytes(latin1)
    with pytest.raises(
        RecordsError,
        match=re.escape(f"latin1.json: not UTF-8 text (invalid continuation byte at byte {latin1.index(0xE9)})"),
    ):
        load_records(tmp_path / "latin1.json")
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + (SAMPLES / "cardiology_followup.bundle.json").read_bytes())
    assert load_records(tmp_path / "bom.json").patient_id == "pt-1001"


PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Roe", "given": ["Jane"]}]}
SUBJECT = {"reference": "Patient/p1"}


def _medication(**fields) -> dict:
    return {"resourceType": "MedicationStatement", "id": "m1", "status": "active", "subject": SUBJECT, **fields}


# (the entry after the Patient, where its text is, what the message names); each is refused for every HOSTILE text
HOSTILE_PLACES = [
    (_medication(medicationCodeableConcept={"text": "{}"}), "medicationCodeableConcept.text"),
    (
        _medication(medicationCodeableConcept=coded(RXNORM, "197361", "{}")),
        "medicationCodeableConcept.coding[0].display",
    ),
    (_medication(medicationCodeableConcept=coded(RXNORM, "1973{}61")), "medicationCodeableConcept.coding[0].code"),
    (_medication(medicationCodeableConcept={"text": "amlodipine"}, dosage=[{"text": "5 mg{}"}]), "dosage[0].text"),
    (_medication(medicationReference={"display": "amlodipine{}"}), "medicationReference.display"),
    (_medication(medicationCodeableConcept={"text": "amlodipine"}, status="active{}"), "status"),
    ({"resourceType": "Condition", "id": "c1", "subject": SUBJECT, "code": {"text": "Gout{}"}}, "code.text"),
    (
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": SUBJECT, "code": {"text": "Penicillin{}"}},
        "code.text",
    ),
    (
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": SUBJECT,
            "code": {"text": "Latex"},
            "reaction": [{"manifestation": [{"text": "Hives{}"}]}],
        },
        "reaction[0].manifestation[0].text",
    ),
    (
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "Smoking"},
            "valueString": "x{}",
        },
        "valueString",
    ),
    (
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "Weight"},
            "valueQuantity": {"value": 80, "unit": "kg{}"},
        },
        "valueQuantity.unit",
    ),
]
HOSTILE = ["\x00", "\x1b[2J", "\x85", "\r", "\u202e", "\u2066"]


def _place(resource: dict, text: str) -> dict:
    return json.loads(json.dumps(resource).replace("{}", json.dumps(text)[1:-1]))


@pytest.mark.parametrize(
    ("resource", "field"), HOSTILE_PLACES, ids=[f"{r['resourceType']}.{f}" for r, f in HOSTILE_PLACES]
)
def test_every_text_scribe_reads_from_records_must_be_clean(tmp_path: Path, resource, field):
    kind, rid = resource["resourceType"], resource["id"]
    path = tmp_path / "bundle.json"
    for char in HOSTILE:
        path.write_text(json.dumps(bundle(PATIENT, _place(resource, char))))
        with pytest.raises(RecordsError) as info:
            load_records(path)
        expected = f"{path}: entry[1] ({kind}/{rid}): {field}: contains U+{ord(char[0]):04X} "
        assert str(info.value).startswith(expected), (repr(char), str(info.value))
    path.write_text(json.dumps(bundle(PATIENT, _place(resource, " ok"))))
    assert load_records(path).patient_id == "p1"


def test_names_entry_ids_and_full_urls_are_one_line_and_free_text_may_span_lines(tmp_path: Path):
    path = tmp_path / "bundle.json"
    for resources, full_urls, message in [
        ([{**PATIENT, "name": [{"family": "Roe\n", "given": ["Jane"]}]}], (), "entry[0] (Patient/p1): name[0].family"),
        ([{**PATIENT, "name": [{"given": ["Ja\u202ene"]}]}], (), "entry[0] (Patient/p1): name[0].given[0]"),
        ([{**PATIENT, "name": [{"text": "Jane\u2067Roe"}]}], (), "entry[0] (Patient/p1): name[0].text"),
        (
            [PATIENT, _medication(id=None, medicationCodeableConcept={"text": "x"})],
            (None, "urn:\u202e"),
            "entry[1].fullUrl",
        ),
        ([{"resourceType": "Basic\u0000"}], (), "entry[0].resource.resourceType"),
    ]:
        path.write_text(json.dumps(bundle(*resources, full_urls=full_urls)))
        with pytest.raises(RecordsError, match=re.escape(f"{path}: {message}: contains U+")):
            load_records(path)
    multi_line = _medication(
        medicationCodeableConcept={"text": "amlodipine"}, dosage=[{"text": "5 mg daily\n\twith food"}]
    )
    path.write_text(json.dumps(bundle(PATIENT, multi_line)))
    assert load_records(path).medications[0].dosage == "5 mg daily\n\twith food"


def test_records_with_hostile_text_are_refused_over_rest_and_nothing_is_attached(api):
    """A 422 OperationOutcome naming the entry and the field, also when the encounter already names its patient
    (the patient's name alone was checked before, and only when the records named the patient)."""
    encounter = new_encounter(api, patient="p1")
    hostile = bundle(PATIENT, _medication(medicationCodeableConcept={"text": "amlodipine\u202e01 gm"}))
    refused = post_records(api, encounter, json.dumps(hostile).encode())
    assert refused.status_code == 422 and refused.json()["resourceType"] == "OperationOutcome", refused.text
    diagnostics = refused.json()["issue"][0]["diagnostics"]
    assert diagnostics.startswith("entry[1] (MedicationStatement/m1): medicationCodeableConcept.text: contains U+202E")
    assert "\u202e" not in diagnostics
    context = api.get(f"/v1/encounters/{encounter}/context", headers=DR_A).json()
    assert context["records"] == [] and context["medications"] == []
