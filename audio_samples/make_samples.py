#!/usr/bin/env python3
"""Regenerate the sample dictations: synthetic speech (espeak-ng), sox post-processing, FHIR bundles.

Each sample NAME gets NAME.wav (16 kHz mono 16-bit), NAME.txt (the words spoken, as a
transcriptionist would write them) and NAME.bundle.json (the patient's prior records: the
medications mentioned plus others that are not, conditions, allergies, observations).
Patients are invented. Output is deterministic for a given espeak-ng/sox version.

    python audio_samples/make_samples.py [OUT_DIR]      (needs espeak-ng and sox on PATH)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"

# name: (voice, words per minute, sox effects, dictation, patient, conditions, medications, allergies, observations)
# medications: (rxnorm code, full display, dosage text, mentioned in the dictation)
SAMPLES = {
    "cardiology_followup": dict(
        voice="en-us+m3", wpm=170, effects=[],
        text="Follow up for atrial fibrillation and hypertension. She takes apixaban 5 milligrams twice daily "
             "and metoprolol 50 milligrams daily. Blood pressure 142 over 88. Add amlodipine 5 milligrams daily.",
        patient=("pt-1001", "Maria", "Alvarez", "female", "1956-03-14"),
        conditions=[("I48.91", "Unspecified atrial fibrillation"), ("I10", "Essential (primary) hypertension")],
        medications=[("1364445", "apixaban 5 MG Oral Tablet", "5 mg twice daily", True),
                     ("866514", "metoprolol tartrate 50 MG Oral Tablet", "50 mg daily", True),
                     ("308135", "amlodipine 5 MG Oral Tablet", "5 mg daily", True),
                     ("617318", "atorvastatin 20 MG Oral Tablet", "20 mg at night", False)],
        allergies=[("Penicillin", "Hives")],
        observations=[("85354-9", "Blood pressure panel", "150/90", "mm[Hg]")],
    ),
    "diabetes_visit": dict(
        voice="en-gb", wpm=172, effects=[],
        text="Type 2 diabetes review. A1c is 8.1 percent. Continue metformin 1000 milligrams twice daily. "
             "Start empagliflozin 10 milligrams every morning. He is allergic to sulfa drugs.",
        patient=("pt-1002", "James", "Okafor", "male", "1961-11-02"),
        conditions=[("E11.9", "Type 2 diabetes mellitus without complications"), ("E78.5", "Hyperlipidemia, unspecified")],
        medications=[("861007", "metformin hydrochloride 1000 MG Oral Tablet", "1000 mg twice daily", True),
                     ("1545658", "empagliflozin 10 MG Oral Tablet", "10 mg every morning", True),
                     ("259255", "atorvastatin calcium 80 MG Oral Tablet", "80 mg daily", False)],
        allergies=[("Sulfonamide antibiotics", "Rash")],
        observations=[("4548-4", "Hemoglobin A1c", "8.1", "%")],
    ),
    "thyroid_depression": dict(
        voice="en-us+f3", wpm=165, effects=["gain", "-2"],
        text="Hypothyroidism and depression. TSH is 6.2. Increase levothyroxine to 88 micrograms daily. "
             "Continue sertraline 100 milligrams daily. Recheck thyroid labs in six weeks.",
        patient=("pt-1003", "Susan", "Lindqvist", "female", "1972-07-21"),
        conditions=[("E03.9", "Hypothyroidism, unspecified"), ("F32.A", "Depression, unspecified")],
        medications=[("966247", "levothyroxine sodium 0.075 MG Oral Tablet", "75 mcg daily", True),
                     ("312941", "sertraline 100 MG Oral Tablet", "100 mg daily", True),
                     ("197361", "amlodipine 10 MG Oral Tablet", "10 mg daily", False)],
        allergies=[("Codeine", "Nausea")],
        observations=[("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "6.2", "m[IU]/L")],
    ),
    "back_pain_phone": dict(
        voice="en-gb-x-rp", wpm=175, effects=["sinc", "300-3400", "gain", "-3"],
        text="Chronic low back pain with sciatica. Continue gabapentin 300 milligrams three times daily. "
             "Stop ibuprofen because of reflux and start pantoprazole 40 milligrams daily.",
        patient=("pt-1004", "Robert", "Nakamura", "male", "1968-01-30"),
        conditions=[("M54.41", "Lumbago with sciatica, right side"), ("K21.9", "Gastro-esophageal reflux disease")],
        medications=[("310431", "gabapentin 300 MG Oral Capsule", "300 mg three times daily", True),
                     ("310965", "ibuprofen 600 MG Oral Tablet", "600 mg as needed", True),
                     ("314077", "pantoprazole 40 MG Delayed Release Oral Tablet", "40 mg daily", True),
                     ("308136", "lisinopril 10 MG Oral Tablet", "10 mg daily", False)],
        allergies=[("Latex", "Contact dermatitis")],
        observations=[("72514-3", "Pain severity", "7", "{score}")],
    ),
    "urology_asthma": dict(
        voice="en-us+m7", wpm=180, effects=[],
        text="Benign prostatic hyperplasia and asthma. Continue tamsulosin 0.4 milligrams at bedtime "
             "and montelukast 10 milligrams nightly. Use albuterol as needed for wheezing.",
        patient=("pt-1005", "David", "Mensah", "male", "1959-09-09"),
        conditions=[("N40.0", "Benign prostatic hyperplasia without lower urinary tract symptoms"),
                    ("J45.909", "Unspecified asthma, uncomplicated")],
        medications=[("863669", "tamsulosin hydrochloride 0.4 MG Oral Capsule", "0.4 mg at bedtime", True),
                     ("997501", "montelukast 10 MG Oral Tablet", "10 mg nightly", True),
                     ("745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "2 puffs as needed", True),
                     ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", "5 mg as needed", False)],
        allergies=[("Aspirin", "Bronchospasm")],
        observations=[("19926-5", "FEV1/FVC", "0.68", "1")],
    ),
}


def bundle(name: str, spec: dict) -> dict:
    pid, given, family, gender, birth = spec["patient"]
    patient_ref = {"reference": f"Patient/{pid}"}
    entries = [{"resourceType": "Patient", "id": pid, "name": [{"given": [given], "family": family}],
                "gender": gender, "birthDate": birth}]
    for i, (code, display) in enumerate(spec["conditions"], 1):
        entries.append({"resourceType": "Condition", "id": f"{name}-cond-{i}", "subject": patient_ref,
                        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                       "code": "active"}]},
                        "code": {"coding": [{"system": ICD10, "code": code, "display": display}]}})
    for i, (code, display, dosage, _mentioned) in enumerate(spec["medications"], 1):
        entries.append({"resourceType": "MedicationStatement", "id": f"{name}-med-{i}", "status": "active",
                        "subject": patient_ref, "dosage": [{"text": dosage}],
                        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]}})
    for i, (substance, reaction) in enumerate(spec["allergies"], 1):
        entries.append({"resourceType": "AllergyIntolerance", "id": f"{name}-allergy-{i}", "patient": patient_ref,
                        "code": {"text": substance}, "reaction": [{"manifestation": [{"text": reaction}]}]})
    for i, (code, display, value, unit) in enumerate(spec["observations"], 1):
        obs = {"resourceType": "Observation", "id": f"{name}-obs-{i}", "status": "final", "subject": patient_ref,
               "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
               "effectiveDateTime": "2026-10-01"}
        if "/" in value:
            obs["valueString"] = value
        else:
            obs["valueQuantity"] = {"value": float(value), "unit": unit}
        entries.append(obs)
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{name}-{i}", "resource": r} for i, r in enumerate(entries)]}


def synthesise(text: str, voice: str, wpm: int, effects: list[str], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), *effects,
                        "pad", "0.25", "0.25"], check=True)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in SAMPLES.items():
        synthesise(spec["text"], spec["voice"], spec["wpm"], spec["effects"], out_dir / f"{name}.wav")
        (out_dir / f"{name}.txt").write_text(spec["text"] + "\n", encoding="utf-8")
        (out_dir / f"{name}.bundle.json").write_text(json.dumps(bundle(name, spec), indent=1) + "\n", encoding="utf-8")
        print(name, file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
