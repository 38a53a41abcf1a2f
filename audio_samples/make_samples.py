#!/usr/bin/env python3
"""Regenerate the sample dictations: synthetic speech (espeak-ng), sox post-processing, FHIR bundles.

Each sample NAME gets three files:

- NAME.wav          16 kHz mono 16-bit PCM, a clinician dictating part of a progress note;
- NAME.txt          the reference transcript: exactly the words spoken, as a transcriptionist
                    writes them (digits for numbers, "milligrams" because that is what is said);
- NAME.bundle.json  the patient's prior records, a FHIR R4 Bundle (type collection): Patient,
                    Conditions (ICD-10-CM), MedicationStatement/MedicationRequest (RxNorm clinical
                    drugs) with every drug the dictation names plus one or two it does not,
                    AllergyIntolerance and Observations (LOINC).

Patients are invented. The audio is the words of NAME.txt spoken as written: nothing is
respelled for the synthesiser. Output is byte-for-byte reproducible for a given espeak-ng and
sox version (sox runs with -R, so its noise and dither are seeded); fullUrls are UUIDv5 of
the resource ids. The whole directory must stay under 2 MB (about 60 s of audio in total).

    python audio_samples/make_samples.py [OUT_DIR]      (needs espeak-ng and sox on PATH)

Tested with espeak-ng 1.51 and SoX 14.4.2 (Debian packages `espeak-ng`, `sox`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5.99999.1"  # the HL7 example OID arc: not a real facility
SAMPLE_RATE = 16000
PAD_S = 0.2  # silence kept before and after the speech
SIZE_BUDGET = 2_000_000  # bytes, the whole audio_samples/ directory


@dataclass(frozen=True)
class Drug:
    rxnorm: str
    display: str  # RxNorm clinical drug name, as an EHR stores it
    dosage: str
    spoken: bool  # named in the dictation
    resource: str = "MedicationStatement"  # or MedicationRequest
    status: str = "active"
    by_reference: bool = False  # medicationReference to a Medication entry instead of a CodeableConcept


@dataclass(frozen=True)
class Measurement:
    loinc: str
    display: str
    category: str  # vital-signs | laboratory | social-history | survey
    value: float | str | tuple[str, str] | None = None  # number, string, or (SNOMED code, display)
    unit: str | None = None  # UCUM code
    components: tuple[tuple[str, str, float], ...] = ()  # (LOINC, display, value) sharing `unit`
    date: str = "2026-08-14"


@dataclass(frozen=True)
class Sample:
    name: str
    voice: str
    wpm: int
    text: str
    patient: tuple[str, str, str, str, str]  # id, given, family, gender, birth date
    conditions: tuple[tuple[str, str, str], ...]  # ICD-10-CM code, display, onset
    drugs: tuple[Drug, ...]
    # allergies: (substance system, code, text, reaction SNOMED code, reaction, criticality)
    allergies: tuple[tuple[str, str, str, str, str, str], ...]
    observations: tuple[Measurement, ...]
    effects: tuple[str, ...] = ()  # sox effects after resampling
    noise: float = 0.0  # white noise amplitude (0..1) mixed under the speech
    notes: str = ""


SAMPLES = (
    Sample(
        name="cardiology_followup",
        voice="en-us",
        wpm=175,
        text="Atrial fibrillation follow-up. On apixaban 5 milligrams twice daily, metoprolol 50 milligrams "
        "and amlodipine 5 milligrams daily. Blood pressure 148 over 92. Increase amlodipine to 10 milligrams.",
        patient=("pt-1001", "Maria", "Alvarez", "female", "1956-03-14"),
        conditions=(
            ("I48.91", "Unspecified atrial fibrillation", "2021-05-02"),
            ("I10", "Essential (primary) hypertension", "2015-09-20"),
            ("E78.5", "Hyperlipidemia, unspecified", "2016-01-11"),
        ),
        drugs=(
            Drug("1364445", "apixaban 5 MG Oral Tablet", "5 mg by mouth twice daily", True),
            Drug("866514", "metoprolol tartrate 50 MG Oral Tablet", "50 mg by mouth daily", True),
            Drug("197361", "amlodipine 5 MG Oral Tablet", "5 mg by mouth daily", True, "MedicationRequest"),
            Drug("617311", "atorvastatin 40 MG Oral Tablet", "40 mg by mouth at bedtime", False),
            # a warfarin entry recorded on the wrong patient and retracted: readers must skip it
            Drug("855332", "warfarin sodium 5 MG Oral Tablet", "5 mg by mouth daily", False, status="entered-in-error"),
        ),
        allergies=((RXNORM, "7984", "Penicillin", "247472004", "Hives", "high"),),
        observations=(
            Measurement(
                "85354-9",
                "Blood pressure panel with all children optional",
                "vital-signs",
                unit="mm[Hg]",
                components=(("8480-6", "Systolic blood pressure", 150), ("8462-4", "Diastolic blood pressure", 90)),
            ),
            Measurement("8867-4", "Heart rate", "vital-signs", 72, "/min"),
        ),
    ),
    Sample(
        name="diabetes_visit",
        voice="en-gb",
        wpm=180,
        text="Diabetes review. Takes metformin 1000 milligrams twice daily and empagliflozin 10 milligrams "
        "each morning. Sulfa allergy. A1c 8.4 percent. Refer to dietitian.",
        patient=("pt-1002", "James", "Okafor", "male", "1961-11-02"),
        conditions=(
            ("E11.65", "Type 2 diabetes mellitus with hyperglycemia", "2012-04-18"),
            ("I10", "Essential (primary) hypertension", "2014-02-03"),
            ("E66.9", "Obesity, unspecified", "2012-04-18"),
        ),
        drugs=(
            Drug("861004", "metformin hydrochloride 1000 MG Oral Tablet", "1000 mg by mouth twice daily", True),
            Drug(
                "1545653",
                "empagliflozin 10 MG Oral Tablet",
                "10 mg by mouth every morning",
                True,
                "MedicationRequest",
                by_reference=True,
            ),
            Drug("314077", "lisinopril 20 MG Oral Tablet", "20 mg by mouth daily", False),
            Drug("859751", "rosuvastatin calcium 20 MG Oral Tablet", "20 mg by mouth daily", False),
        ),
        allergies=((RXNORM, "10831", "Sulfa drugs", "271807003", "Rash", "low"),),
        observations=(
            Measurement(
                "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory", 7.9, "%", date="2026-05-20"
            ),
            Measurement("29463-7", "Body weight", "vital-signs", 97, "kg", date="2026-05-20"),
        ),
    ),
    Sample(
        name="thyroid_depression",
        voice="en-us+f3",
        wpm=165,
        text="Tired and low mood. Takes levothyroxine 75 micrograms and sertraline 100 milligrams daily. "
        "TSH 6.8. Increase levothyroxine to 88 micrograms.",
        patient=("pt-1003", "Susan", "Lindqvist", "female", "1972-07-21"),
        conditions=(
            ("E03.9", "Hypothyroidism, unspecified", "2018-10-09"),
            ("F33.1", "Major depressive disorder, recurrent, moderate", "2019-03-27"),
            ("I10", "Essential (primary) hypertension", "2020-06-15"),
        ),
        drugs=(
            Drug("966222", "levothyroxine sodium 0.075 MG Oral Tablet", "75 mcg by mouth every morning", True),
            Drug("312938", "sertraline 100 MG Oral Tablet", "100 mg by mouth daily", True, "MedicationRequest"),
            Drug("310798", "hydrochlorothiazide 25 MG Oral Tablet", "25 mg by mouth daily", False),
        ),
        allergies=((RXNORM, "2670", "Codeine", "422587007", "Nausea", "low"),),
        observations=(
            Measurement(
                "3016-3",
                "Thyrotropin [Units/volume] in Serum or Plasma",
                "laboratory",
                5.9,
                "m[IU]/L",
                date="2026-06-02",
            ),
        ),
        effects=("gain", "-4"),
        notes="quieter speaker (-4 dB)",
    ),
    Sample(
        name="back_pain_phone",
        voice="en-gb-x-rp",
        wpm=175,
        text="Sciatica on the right. On gabapentin 300 milligrams three times daily, naproxen 500 milligrams "
        "twice daily and pantoprazole 40 milligrams. Assessment: lumbar radiculopathy.",
        patient=("pt-1004", "Robert", "Nakamura", "male", "1968-01-30"),
        conditions=(
            ("M54.16", "Radiculopathy, lumbar region", "2025-11-04"),
            ("K21.9", "Gastro-esophageal reflux disease without esophagitis", "2019-07-22"),
        ),
        drugs=(
            Drug("310431", "gabapentin 300 MG Oral Capsule", "300 mg by mouth three times daily", True),
            Drug(
                "198014",
                "naproxen 500 MG Oral Tablet",
                "500 mg by mouth twice daily with food",
                True,
                "MedicationRequest",
            ),
            Drug(
                "314200",
                "pantoprazole 40 MG Delayed Release Oral Tablet",
                "40 mg by mouth daily before breakfast",
                True,
            ),
            Drug(
                "835603",
                "tramadol hydrochloride 50 MG Oral Tablet",
                "50 mg by mouth every 6 hours as needed",
                False,
                "MedicationRequest",
                status="stopped",
            ),
        ),
        allergies=((SNOMED, "111088007", "Latex", "40275004", "Contact dermatitis", "low"),),
        observations=(
            Measurement(
                "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "survey", 7, "{score}"
            ),
        ),
        effects=("sinc", "300-3400", "gain", "-n", "-3"),
        noise=0.006,
        notes="telephone band (300-3400 Hz) with a little white noise",
    ),
    Sample(
        name="urology_asthma",
        voice="en-us+m7",
        wpm=185,
        text="Weak urinary stream and wheezing at night. On tamsulosin 0.4 milligrams, montelukast 10 milligrams "
        "and albuterol as needed. Allergic to aspirin. Check PSA.",
        patient=("pt-1005", "David", "Mensah", "male", "1959-09-09"),
        conditions=(
            ("N40.1", "Benign prostatic hyperplasia with lower urinary tract symptoms", "2022-02-14"),
            ("J45.40", "Moderate persistent asthma, uncomplicated", "1998-05-01"),
        ),
        drugs=(
            Drug("863669", "tamsulosin hydrochloride 0.4 MG Oral Capsule", "0.4 mg by mouth at bedtime", True),
            Drug("200224", "montelukast 10 MG Oral Tablet", "10 mg by mouth nightly", True),
            Drug(
                "745679",
                "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
                "2 puffs every 4 hours as needed for wheezing",
                True,
                "MedicationRequest",
            ),
            Drug("310346", "finasteride 5 MG Oral Tablet", "5 mg by mouth daily", False),
        ),
        allergies=((RXNORM, "1191", "Aspirin", "4386001", "Bronchospasm", "high"),),
        observations=(
            Measurement(
                "2857-1",
                "Prostate specific Ag [Mass/volume] in Serum or Plasma",
                "laboratory",
                2.1,
                "ng/mL",
                date="2026-03-09",
            ),
            Measurement(
                "72166-2", "Tobacco smoking status", "social-history", ("8517006", "Ex-smoker"), date="2026-03-09"
            ),
        ),
    ),
)


def full_url(sample: str, reference: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'scribe/audio_samples/{sample}/{reference}')}"


def concept(system: str, code: str, display: str, text: str | None = None) -> dict:
    result: dict = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        result["text"] = text
    return result


def bundle(sample: Sample) -> dict:
    """The prior records of one sample patient as a FHIR R4 collection Bundle."""
    pid, given, family, gender, birth = sample.patient
    subject = {"reference": full_url(sample.name, f"Patient/{pid}"), "display": f"{given} {family}"}
    resources: list[dict] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": MRN_SYSTEM, "value": pid.replace("pt-", "MRN")}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": gender,
            "birthDate": birth,
        }
    ]
    for i, (code, display, onset) in enumerate(sample.conditions, 1):
        resources.append(
            {
                "resourceType": "Condition",
                "id": f"cond-{i}",
                "clinicalStatus": concept(CONDITION_CLINICAL, "active", "Active"),
                "verificationStatus": concept(CONDITION_VERIFICATION, "confirmed", "Confirmed"),
                "category": [concept(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
                "code": concept(ICD10CM, code, display),
                "subject": subject,
                "onsetDateTime": onset,
            }
        )
    counters = {"MedicationStatement": 0, "MedicationRequest": 0, "Medication": 0}
    for drug in sample.drugs:
        counters[drug.resource] += 1
        prefix = "ms" if drug.resource == "MedicationStatement" else "mr"
        resource: dict = {
            "resourceType": drug.resource,
            "id": f"{prefix}-{counters[drug.resource]}",
            "status": drug.status,
        }
        if drug.resource == "MedicationRequest":
            resource["intent"] = "order"
        medication = concept(RXNORM, drug.rxnorm, drug.display)
        if drug.by_reference:
            counters["Medication"] += 1
            med_id = f"med-{counters['Medication']}"
            resources.append({"resourceType": "Medication", "id": med_id, "code": medication})
            resource["medicationReference"] = {"reference": full_url(sample.name, f"Medication/{med_id}")}
        else:
            resource["medicationCodeableConcept"] = medication
        resource["subject"] = subject
        if drug.resource == "MedicationStatement":
            resource["effectivePeriod"] = {"start": "2025-01-15"}
            resource["dateAsserted"] = "2026-08-14"
            resource["dosage"] = [{"text": drug.dosage}]
        else:
            resource["authoredOn"] = "2026-02-10"
            resource["dosageInstruction"] = [{"text": drug.dosage}]
        resources.append(resource)
    for i, (system, code, text, reaction_code, reaction, criticality) in enumerate(sample.allergies, 1):
        resources.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"allergy-{i}",
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "type": "allergy",
                "category": ["environment" if system == SNOMED else "medication"],
                "criticality": criticality,
                "code": concept(system, code, text, text),
                "patient": subject,
                "reaction": [{"manifestation": [concept(SNOMED, reaction_code, reaction, reaction)]}],
            }
        )
    for i, obs in enumerate(sample.observations, 1):
        resource = {
            "resourceType": "Observation",
            "id": f"obs-{i}",
            "status": "final",
            "category": [concept(OBSERVATION_CATEGORY, obs.category, obs.category.replace("-", " ").title())],
            "code": concept(LOINC, obs.loinc, obs.display),
            "subject": subject,
            "effectiveDateTime": obs.date,
        }
        if obs.components:
            resource["component"] = [
                {
                    "code": concept(LOINC, code, display),
                    "valueQuantity": {"value": value, "unit": obs.unit, "system": UCUM, "code": obs.unit},
                }
                for code, display, value in obs.components
            ]
        elif isinstance(obs.value, tuple):
            resource["valueCodeableConcept"] = concept(SNOMED, *obs.value)
        elif isinstance(obs.value, str):
            resource["valueString"] = obs.value
        elif obs.value is not None:
            resource["valueQuantity"] = {"value": obs.value, "unit": obs.unit, "system": UCUM, "code": obs.unit}
        resources.append(resource)
    entries = [{"fullUrl": full_url(sample.name, f"{r['resourceType']}/{r['id']}"), "resource": r} for r in resources]
    return {
        "resourceType": "Bundle",
        "id": f"{sample.name.replace('_', '-')}-records",
        "type": "collection",
        "timestamp": "2026-10-01T09:00:00Z",
        "entry": entries,
    }


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def synthesise(sample: Sample, out: Path) -> float:
    """Speak the text, resample to 16 kHz, trim the synthesiser's own silence, apply effects; seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, speech, noise = Path(tmp) / "raw.wav", Path(tmp) / "speech.wav", Path(tmp) / "noise.wav"
        run("espeak-ng", "-v", sample.voice, "-s", str(sample.wpm), "-w", str(raw), sample.text)
        run(
            "sox",
            "-R",
            str(raw),
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(speech),
            "silence",
            "1",
            "0.02",
            "0.5%",
            "reverse",
            "silence",
            "1",
            "0.02",
            "0.5%",
            "reverse",
            *sample.effects,
            "pad",
            str(PAD_S),
            str(PAD_S),
        )
        if sample.noise:
            seconds = run("sox", "--i", "-D", str(speech)).strip()
            run(
                "sox",
                "-R",
                "-n",
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                str(noise),
                "synth",
                seconds,
                "whitenoise",
                "vol",
                str(sample.noise),
            )
            run("sox", "-R", "-m", str(speech), str(noise), "-b", "16", str(out))
        else:
            shutil.copyfile(speech, out)
    return float(run("sox", "--i", "-D", str(out)))


def main(out_dir: Path) -> int:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(
            f"make_samples: {' and '.join(missing)} not found on PATH (Debian: apt-get install espeak-ng sox)",
            file=sys.stderr,
        )
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    total_s = 0.0
    for sample in SAMPLES:
        wav = out_dir / f"{sample.name}.wav"
        seconds = synthesise(sample, wav)
        total_s += seconds
        (out_dir / f"{sample.name}.txt").write_text(sample.text + "\n", encoding="utf-8")
        (out_dir / f"{sample.name}.bundle.json").write_text(
            json.dumps(bundle(sample), indent=1) + "\n", encoding="utf-8"
        )
        spoken = sum(d.spoken for d in sample.drugs)
        print(
            f"{sample.name}: {sample.voice} {sample.wpm} wpm {seconds:.2f} s {wav.stat().st_size} B, "
            f"{spoken} drugs spoken of {len(sample.drugs)} in records{'; ' + sample.notes if sample.notes else ''}",
            file=sys.stderr,
        )
    size = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    print(f"total: {total_s:.1f} s of audio, directory {size} bytes (budget {SIZE_BUDGET})", file=sys.stderr)
    return 0 if size <= SIZE_BUDGET else 2


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent))
