"""Prior records: FHIR R4 Bundles read into a PatientContext, and the errors a malformed one gets."""

import json
import re
from pathlib import Path

import pytest

from scribe.clinical.spoken_names import spoken_drug_name
from scribe.errors import RecordsError
from scribe.records import (
    Allergy,
    Medication,
    Observation,
    PatientContext,
    Problem,
    load_records,
    parse_bundle,
)
from tests.conftest import SAMPLES
from tests.helpers.fhir import ICD10CM, LOINC, RXNORM, SNOMED, bundle, coded, status

REALISTIC = bundle(
    {
        "resourceType": "Patient",
        "id": "p7",
        "text": {"status": "generated", "div": "<div>Ana</div>"},
        "name": [
            {"use": "nickname", "given": ["Annie"]},
            {"use": "official", "family": "Ng", "given": ["Ana", "Li"], "prefix": ["Ms"]},
        ],
        "gender": "female",
        "birthDate": "1970-02-03",
        "address": [{"city": "Springfield"}],
    },
    {"resourceType": "Practitioner", "id": "dr-1", "name": [{"family": "House"}]},
    {"resourceType": "Encounter", "id": "e1", "status": "finished", "subject": {"reference": "Patient/p7"}},
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p7"},
        "clinicalStatus": status("condition-clinical", "active"),
        "verificationStatus": status("condition-ver-status", "confirmed"),
        "code": {
            "coding": [
                {"system": SNOMED, "code": "44054006", "display": "Diabetes mellitus type 2 (disorder)"},
                {"system": ICD10CM, "code": "E11.9", "display": "Type 2 diabetes mellitus without complications"},
            ]
        },
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "urn:uuid:6b0c-patient"},
        "clinicalStatus": status("condition-clinical", "resolved"),
        "code": {"text": "Community-acquired pneumonia", **coded(SNOMED, "385093006")},
    },
    {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p7"},
        "medicationCodeableConcept": coded(RXNORM, "861004", "metformin hydrochloride 1000 MG Oral Tablet"),
        "dosageInstruction": [{"text": "1000 mg twice daily with meals", "timing": {"code": {"text": "BID"}}}],
    },
    {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "completed",
        "subject": {"reference": "Patient/p7"},
        "medicationCodeableConcept": {
            "text": "Amoxicillin 500mg capsules",
            **coded(RXNORM, "308191", "amoxicillin 500 MG Oral Capsule"),
        },
        "dosage": [{"text": "500 mg three times daily for 7 days"}],
    },
    {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "patient": {"reference": "Patient/p7"},
        "clinicalStatus": status("allergyintolerance-clinical", "active"),
        "verificationStatus": status("allergyintolerance-verification", "confirmed"),
        "criticality": "high",
        "code": coded(RXNORM, "7980", "Penicillin G"),
        "reaction": [{"manifestation": [{"text": "Hives"}, coded(SNOMED, "39579001", "Anaphylaxis")]}],
    },
    {
        "resourceType": "AllergyIntolerance",
        "id": "a2",
        "patient": {"reference": "Patient/p7"},
        "reaction": [{"substance": {"text": "Shellfish"}, "description": "Lip swelling"}],
    },
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": "Patient/p7"},
        "code": coded(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        "valueQuantity": {"value": 8.0, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
        "effectiveDateTime": "2026-09-30T08:15:00Z",
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "code": coded(LOINC, "85354-9", "Blood pressure"),
        "component": [
            {"code": coded(LOINC, "8480-6"), "valueQuantity": {"value": 132, "code": "mm[Hg]"}},
            {"code": coded(LOINC, "8462-4"), "valueQuantity": {"value": 84, "code": "mm[Hg]"}},
        ],
        "effectivePeriod": {"start": "2026-09-30", "end": "2026-09-30"},
    },
    {
        "resourceType": "Observation",
        "id": "o3",
        "status": "final",
        "code": {"text": "Smoking status"},
        "valueCodeableConcept": coded(SNOMED, "8517006", "Ex-smoker"),
    },
    {
        "resourceType": "Observation",
        "id": "o4",
        "status": "final",
        "code": {"text": "Urine culture"},
        "valueString": "No growth",
    },
    {"resourceType": "Observation", "id": "o5", "status": "final", "code": {"text": "PHQ-9 score"}, "valueInteger": 11},
    full_urls=("urn:uuid:6b0c-patient",),
)


def test_a_realistic_bundle_parses_into_the_expected_context():
    assert parse_bundle(REALISTIC) == PatientContext(
        patient_id="p7",
        name="Ana Li Ng",
        birth_date="1970-02-03",
        gender="female",
        patient_reference="Patient/p7",
        medications=[
            Medication(
                "metformin",
                "MedicationRequest/mr1",
                "metformin hydrochloride 1000 MG Oral Tablet",
                "1000 mg twice daily with meals",
                "active",
                "861004",
                RXNORM,
            ),
            Medication(
                "amoxicillin",
                "MedicationStatement/ms1",
                "Amoxicillin 500mg capsules",
                "500 mg three times daily for 7 days",
                "completed",
                "308191",
                RXNORM,
            ),
        ],
        problems=[
            Problem("Type 2 diabetes mellitus without complications", "Condition/c1", "E11.9", ICD10CM, "active"),
            Problem("Community-acquired pneumonia", "Condition/c2", "385093006", SNOMED, "resolved"),
        ],
        allergies=[
            Allergy("Penicillin G", "AllergyIntolerance/a1", "Hives, Anaphylaxis", "high", "active"),
            Allergy("Shellfish", "AllergyIntolerance/a2", "Lip swelling"),
        ],
        observations=[
            Observation(
                "Hemoglobin A1c/Hemoglobin.total in Blood",
                "Observation/o1",
                "8.0",
                "%",
                "2026-09-30T08:15:00Z",
                "4548-4",
            ),
            Observation("Blood pressure", "Observation/o2", "132/84", "mm[Hg]", "2026-09-30", "85354-9"),
            Observation("Smoking status", "Observation/o3", "Ex-smoker"),
            Observation("Urine culture", "Observation/o4", "No growth"),
            Observation("PHQ-9 score", "Observation/o5", "11"),
        ],
    )


def test_sample_bundle_parses_into_context():
    context = load_records(SAMPLES / "cardiology_followup.bundle.json")
    assert (context.patient_id, context.name, context.gender, context.birth_date) == (
        "pt-1001",
        "Maria Alvarez",
        "female",
        "1956-03-14",
    )
    assert context.patient_reference == "Patient/pt-1001"
    # the entered-in-error warfarin statement is left out
    assert [m.name for m in context.medications] == ["apixaban", "metoprolol", "amlodipine", "atorvastatin"]
    apixaban = context.medications[0]
    assert (apixaban.display, apixaban.dosage, apixaban.status, apixaban.code, apixaban.resource_id) == (
        "apixaban 5 MG Oral Tablet",
        "5 mg by mouth twice daily",
        "active",
        "1364445",
        "MedicationStatement/ms-1",
    )
    assert context.medications[2].resource_id == "MedicationRequest/mr-1"
    assert [(p.code, p.status) for p in context.problems] == [
        ("I48.91", "active"),
        ("I10", "active"),
        ("E78.5", "active"),
    ]
    assert {p.system for p in context.problems} == {ICD10CM}
    assert [(a.substance, a.reaction, a.criticality) for a in context.allergies] == [("Penicillin", "Hives", "high")]
    assert [(o.value, o.unit) for o in context.observations] == [("150/90", "mm[Hg]"), ("72", "/min")]


def test_hotwords_are_deduplicated_and_ordered():
    context = parse_bundle(
        bundle(
            {"resourceType": "AllergyIntolerance", "id": "a", "code": {"text": "Penicillin"}},
            {
                "resourceType": "Condition",
                "id": "c1",
                "code": coded(ICD10CM, "I10", "Essential (primary) hypertension"),
            },
            {
                "resourceType": "MedicationRequest",
                "id": "m1",
                "medicationCodeableConcept": {"text": "Metformin 500 MG Oral Tablet"},
            },
            {
                "resourceType": "MedicationStatement",
                "id": "m2",
                "medicationCodeableConcept": {"text": "metformin hydrochloride 1000 MG Oral Tablet"},
            },
            {
                "resourceType": "MedicationStatement",
                "id": "m3",
                "medicationCodeableConcept": coded(
                    RXNORM, "1", "lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet"
                ),
            },
            {
                "resourceType": "Condition",
                "id": "c2",
                "code": coded(ICD10CM, "I48.91", "Unspecified atrial fibrillation"),
            },
            {"resourceType": "Condition", "id": "c3", "code": coded(ICD10CM, "E78.5", "Hyperlipidemia, unspecified")},
            {"resourceType": "Condition", "id": "c4", "code": {"text": "hypertension"}},
            {"resourceType": "AllergyIntolerance", "id": "b", "code": {"text": "PENICILLIN"}},
            {"resourceType": "AllergyIntolerance", "id": "c", "code": {"text": "Lisinopril"}},
        )
    )
    assert context.hotwords() == [
        "metformin",
        "lisinopril",
        "hydrochlorothiazide",
        "Essential hypertension",
        "atrial fibrillation",
        "Hyperlipidemia",
        "hypertension",
        "Penicillin",
    ]
    assert PatientContext().hotwords() == []


def test_medication_reference_resolution():
    context = parse_bundle(
        bundle(
            {"resourceType": "Medication", "id": "m1", "code": coded(RXNORM, "314076", "lisinopril 10 MG Oral Tablet")},
            {"resourceType": "Medication", "code": {"text": "apixaban 5 MG Oral Tablet [Eliquis]"}},
            {"resourceType": "MedicationStatement", "id": "s1", "medicationReference": {"reference": "Medication/m1"}},
            {
                "resourceType": "MedicationStatement",
                "id": "s2",
                "medicationReference": {"reference": "urn:uuid:0d4e", "display": "Eliquis"},
            },
            {
                "resourceType": "MedicationStatement",
                "id": "s3",
                "medicationReference": {"reference": "https://ehr.example/fhir/Medication/m1/_history/3"},
            },
            {
                "resourceType": "MedicationRequest",
                "id": "r1",
                "medicationReference": {"reference": "#c1"},
                "contained": [
                    {"resourceType": "Medication", "id": "c0", "code": {"text": "not this one"}},
                    {"resourceType": "Medication", "id": "c1", "code": {"text": "warfarin sodium 5 MG Oral Tablet"}},
                ],
            },
            {
                "resourceType": "MedicationRequest",
                "id": "r2",
                "medicationReference": {"reference": "Medication/unknown", "display": "Januvia 100 mg tablet"},
            },
            {
                "resourceType": "MedicationRequest",
                "id": "r3",
                "medicationReference": {"reference": "#gone"},
                "contained": [{"resourceType": "Medication", "id": "other"}],
            },
            full_urls=(None, "urn:uuid:0d4e"),
        )
    )
    assert [(m.name, m.resource_id, m.display) for m in context.medications] == [
        ("lisinopril", "MedicationStatement/s1", "lisinopril 10 MG Oral Tablet"),
        ("apixaban", "MedicationStatement/s2", "apixaban 5 MG Oral Tablet [Eliquis]"),
        ("lisinopril", "MedicationStatement/s3", "lisinopril 10 MG Oral Tablet"),
        ("warfarin", "MedicationRequest/r1", "warfarin sodium 5 MG Oral Tablet"),
        ("januvia", "MedicationRequest/r2", "Januvia 100 mg tablet"),
    ]  # r3 names no drug at all: nothing to record
    assert context.medications[0].code == "314076"


def test_unknown_resources_ignored_and_wrong_entries_skipped():
    context = parse_bundle(
        bundle(
            {"resourceType": "Patient", "id": "p1"},
            {"resourceType": "Practitioner", "id": "dr"},
            {"resourceType": "Bundle", "id": "nested", "entry": "not even looked at"},
            {"resourceType": "FutureResourceType", "whatever": [1, 2]},
            {
                "resourceType": "MedicationStatement",
                "id": "x",
                "status": "entered-in-error",
                "medicationCodeableConcept": {"text": "digoxin"},
                "subject": {"reference": "Patient/someone-else"},
            },
            {
                "resourceType": "Condition",
                "id": "r",
                "verificationStatus": status("condition-ver-status", "refuted"),
                "code": {"text": "Pulmonary embolism"},
            },
            {
                "resourceType": "AllergyIntolerance",
                "id": "e",
                "verificationStatus": status("allergyintolerance-verification", "entered-in-error"),
                "code": {"text": "Peanut"},
            },
            {"resourceType": "Observation", "id": "o", "status": "entered-in-error", "code": {"text": "Weight"}},
            {"resourceType": "Condition", "code": {"text": "Asthma"}},
            {"resourceType": "Condition", "code": {"text": "Eczema"}},
            {"resourceType": "Condition", "id": "nameless", "code": coded(SNOMED, "1234")},
            full_urls=(None, None, None, None, None, None, None, None, "urn:uuid:1234"),
        )
    )
    assert context.medications == [] and context.allergies == [] and context.observations == []
    assert [(p.name, p.resource_id) for p in context.problems] == [
        ("Asthma", "urn:uuid:1234"),
        ("Eczema", "Condition at entry[9]"),
    ]


PT = {"reference": "Patient/pt-1001"}
LONE_RESOURCES = [  # each valid FHIR R4, once in a Bundle
    {"resourceType": "Patient", "id": "pt-1001", "name": [{"text": "Maria Alvarez"}]},
    {"resourceType": "Condition", "id": "c", "code": {"text": "Gout"}, "subject": PT},
    {
        "resourceType": "MedicationStatement",
        "id": "m",
        "status": "active",
        "medicationCodeableConcept": {"text": "x"},
        "subject": PT,
    },
]


@pytest.mark.parametrize("resource", LONE_RESOURCES, ids=lambda r: r["resourceType"])
def test_a_single_resource_is_refused_with_the_advice_to_wrap_it_in_a_bundle(resource):
    kind = resource["resourceType"]
    with pytest.raises(RecordsError, match=rf"^resourceType is '{kind}': expected a Bundle .*wrap the {kind} in one"):
        parse_bundle(resource)
    assert parse_bundle(bundle(resource)) is not None  # wrapped, it is read
    assert parse_bundle({"resourceType": "Bundle"}) == PatientContext()


@pytest.mark.parametrize("resource", LONE_RESOURCES[:2], ids=lambda r: r["resourceType"])
def test_the_api_refuses_a_single_resource_and_attaches_nothing(api, resource):
    from tests.helpers.clinic import DR_A, new_encounter, post_records

    kind = resource["resourceType"]
    encounter = api.post("/v1/encounters", json={}, headers=DR_A).json()["id"]
    refused = post_records(api, encounter, json.dumps(resource).encode())
    assert refused.status_code == 422 and refused.json()["resourceType"] == "OperationOutcome"
    assert f"wrap the {kind} in one" in refused.json()["issue"][0]["diagnostics"]
    context = api.get(f"/v1/encounters/{encounter}/context", headers=DR_A).json()
    assert context["records"] == [] and context["problems"] == []
    assert api.get(f"/v1/encounters/{encounter}", headers=DR_A).json()["patient"] == {"id": None, "name": None}
    wrapped = post_records(api, new_encounter(api, patient="pt-1001"), json.dumps(bundle(resource)).encode())
    assert wrapped.status_code == 201, wrapped.text


@pytest.mark.parametrize("resource", LONE_RESOURCES[:2], ids=lambda r: r["resourceType"])
def test_the_cli_refuses_a_single_resource_as_bad_input(settings, capsys, tmp_path: Path, resource):
    """`--records` of `scribe transcribe` and `scribe note`: exit 3 (bad input), the advice on stderr, no output."""
    from scribe.cli import run

    kind = resource["resourceType"]
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(resource))
    for argv in (
        ["transcribe", str(SAMPLES / "cardiology_followup.wav")],
        ["note", str(SAMPLES / "urology_asthma.txt")],
    ):
        code = run([*argv, "--records", str(path)])
        out, err = capsys.readouterr()
        assert code == 3 and out == "" and "Traceback" not in err, err
        assert f"{path}: resourceType is '{kind}': expected a Bundle" in err and f"wrap the {kind} in one" in err


def test_the_same_patient_referenced_every_way_is_one_patient():
    context = parse_bundle(
        bundle(
            {"resourceType": "Patient", "id": "p1", "name": [{"text": "Ana Ng"}]},
            {"resourceType": "Patient", "id": "p1"},
            {"resourceType": "Condition", "code": {"text": "A"}, "subject": {"reference": "Patient/p1"}},
            {"resourceType": "Condition", "code": {"text": "B"}, "subject": {"reference": "urn:uuid:aa"}},
            {"resourceType": "Condition", "code": {"text": "C"}, "subject": {"reference": "http://x/fhir/Patient/p1"}},
            {"resourceType": "Condition", "code": {"text": "D"}, "subject": {"display": "Ana Ng"}},
            {"resourceType": "Observation", "code": {"text": "E"}, "subject": {"reference": "Group/g1"}},
            full_urls=("urn:uuid:aa",),
        )
    )
    assert context.name == "Ana Ng" and [p.name for p in context.problems] == ["A", "B", "C", "D"]
    assert [o.name for o in context.observations] == ["E"]


@pytest.mark.parametrize(
    ("display", "name"),
    [
        ("metformin hydrochloride 500 MG Oral Tablet", "metformin"),
        ("24 HR tamsulosin hydrochloride 0.4 MG Extended Release Oral Capsule", "tamsulosin"),
        ("Levothyroxine Sodium 0.075 MG Oral Tablet", "levothyroxine"),
        ("atorvastatin calcium 40 MG Oral Tablet", "atorvastatin"),
        ("amLODIPine 2.5 MG Oral Tablet", "amlodipine"),
        ("insulin glargine 100 UNT/ML Injectable Solution", "insulin glargine"),
        ("3 ML insulin glargine 100 UNT/ML Pen Injector", "insulin glargine"),
        ("200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "albuterol"),
        ("albuterol 0.09 MG/ACTUAT Metered Dose Inhaler [ProAir]", "albuterol"),
        ("Abuse-Deterrent 12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet [Oxycontin]", "oxycodone"),
        ("NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", "epinephrine"),
        ("{28 (norethindrone 0.35 MG Oral Tablet) } Pack [Errin 28 Day]", "norethindrone"),
        ("lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet", "lisinopril / hydrochlorothiazide"),
        ("Acetaminophen 325 MG / HYDROcodone Bitartrate 5 MG Oral Tablet", "acetaminophen / hydrocodone"),
        ("nitrofurantoin, macrocrystals 25 MG / nitrofurantoin, monohydrate 75 MG Oral Capsule", "nitrofurantoin"),
        ("ferrous sulfate 325 MG Oral Tablet", "ferrous sulfate"),
        ("Potassium Chloride 10 MEQ Extended Release Oral Tablet", "potassium chloride"),
        ("losartan potassium 50 MG Oral Tablet", "losartan"),
        ("Vitamin D3 1000 UNIT Oral Tablet", "vitamin D3"),
        ("Metformin 1000mg twice daily", "metformin"),
        ("Lisinopril 10 mg tablet", "lisinopril"),
        ("Eliquis", "eliquis"),
        ("Oral Tablet", "Oral Tablet"),
    ],
)
def test_spoken_drug_names(display, name):
    assert spoken_drug_name(display) == name


@pytest.mark.parametrize("bundle_path", sorted(SAMPLES.glob("*.bundle.json")), ids=lambda p: p.name.split(".")[0])
def test_sample_bundles_are_realistic_and_match_their_dictation(bundle_path: Path):
    """Each sample's records: one patient, ICD-10-CM problems, RxNorm drugs, some spoken and some not."""
    data = json.loads(bundle_path.read_text())
    assert data["resourceType"] == "Bundle" and data["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in data["entry"]]
    assert kinds.count("Patient") == 1 and 2 <= kinds.count("Condition") <= 3
    assert 3 <= kinds.count("MedicationStatement") + kinds.count("MedicationRequest") <= 5
    assert 1 <= kinds.count("AllergyIntolerance") <= 2 and 1 <= kinds.count("Observation") <= 3
    assert len({e["fullUrl"] for e in data["entry"]}) == len(data["entry"])
    context = load_records(bundle_path)
    assert all(
        re.fullmatch(r"(MedicationStatement|MedicationRequest)/m[sr]-\d", m.resource_id) for m in context.medications
    )
    assert all(m.system == RXNORM and m.code for m in context.medications)
    assert all(p.system == ICD10CM and p.code for p in context.problems)
    reference = bundle_path.with_name(bundle_path.name.replace(".bundle.json", ".txt")).read_text().lower()
    spoken = [m.name for m in context.medications if re.search(rf"\b{m.name}\b", reference)]
    assert 2 <= len(spoken) <= 4 and 1 <= len(context.medications) - len(spoken) <= 2
