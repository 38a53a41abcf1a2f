"""Prior records refused: a file or Bundle scribe cannot read gets one clear error naming the file, the entry and
the field."""

import json
import re
from pathlib import Path

import pytest

from scribe.errors import RecordsError
from scribe.records import (
    load_records,
)
from tests.conftest import SAMPLES
from tests.helpers.fhir import bundle


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
