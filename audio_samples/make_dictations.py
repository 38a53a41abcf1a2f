#!/usr/bin/env python3
"""Twenty more short dictations with prior records, for `scribe bench asr` (not committed: 2 MB budget).

    python audio_samples/make_dictations.py OUT_DIR && scribe bench asr OUT_DIR

Held out: the committed five are a handful of drugs, these add 48 spoken drug names (and 22
recorded but unsaid ones) in ten espeak-ng voices, a quarter over a telephone band, a quarter
with noise, a quarter quieter. Records name drugs and problems by text only (no codes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from make_samples import Drug, Sample, bundle, synthesise

PHONE, NOISY, QUIET, CLEAN = (
    (("sinc", "300-3400", "gain", "-n", "-3"), 0.006),
    ((), 0.01),
    (("gain", "-6"), 0.0),
    ((), 0.0),
)
# name, voice, words a minute, audio, text, drugs in the records ("-": not said), problem
DICTATIONS = (
    (
        "htn_review",
        "en-us",
        175,
        CLEAN,
        "Hypertension review. On lisinopril 20 milligrams and hydrochlorothiazide 25 milligrams daily. Blood pressure 138 over 84. Continue current plan.",
        "lisinopril hydrochlorothiazide atorvastatin-",
        "Essential hypertension",
    ),
    (
        "heart_failure",
        "en-gb",
        170,
        PHONE,
        "Heart failure follow up. Takes furosemide 40 milligrams, spironolactone 25 milligrams and carvedilol 12.5 milligrams twice daily. Weight stable.",
        "furosemide spironolactone carvedilol digoxin-",
        "Heart failure",
    ),
    (
        "stent",
        "en-gb-scotland",
        170,
        CLEAN,
        "Post stent review. On clopidogrel 75 milligrams, aspirin 81 milligrams and rosuvastatin 20 milligrams. No chest pain.",
        "clopidogrel aspirin rosuvastatin ticagrelor-",
        "Coronary artery disease",
    ),
    (
        "dvt",
        "en-029",
        165,
        NOISY,
        "Deep vein thrombosis of the left leg. Started rivaroxaban 15 milligrams twice daily. Stop warfarin. Recheck in three weeks.",
        "rivaroxaban warfarin enoxaparin-",
        "Deep vein thrombosis",
    ),
    (
        "gerd",
        "en-us-nyc",
        180,
        QUIET,
        "Heartburn despite omeprazole 20 milligrams daily. Add famotidine 20 milligrams at night. Avoid ibuprofen.",
        "omeprazole famotidine ibuprofen sucralfate-",
        "Gastro-esophageal reflux disease",
    ),
    (
        "migraine",
        "en-us+f3",
        170,
        CLEAN,
        "Migraine with aura. Uses sumatriptan 50 milligrams as needed. Start topiramate 25 milligrams nightly.",
        "sumatriptan topiramate propranolol-",
        "Migraine with aura",
    ),
    (
        "epilepsy",
        "en-gb-x-gbclan",
        170,
        PHONE,
        "Seizure free on levetiracetam 500 milligrams twice daily and lamotrigine 100 milligrams. Driving discussed.",
        "levetiracetam lamotrigine carbamazepine-",
        "Epilepsy",
    ),
    (
        "gout",
        "en-gb-x-gbcwmd",
        175,
        CLEAN,
        "Gout flare of the right toe. Colchicine 0.6 milligrams twice daily. Continue allopurinol 300 milligrams. Check uric acid.",
        "colchicine allopurinol febuxostat-",
        "Gout",
    ),
    (
        "ra",
        "en-us+m3",
        170,
        NOISY,
        "Rheumatoid arthritis. Methotrexate 15 milligrams weekly with folic acid 1 milligram daily. Hydroxychloroquine 200 milligrams twice daily.",
        "methotrexate folic_acid hydroxychloroquine prednisone-",
        "Rheumatoid arthritis",
    ),
    (
        "anxiety",
        "en-gb+f2",
        165,
        QUIET,
        "Anxiety and insomnia. Takes escitalopram 10 milligrams and trazodone 50 milligrams at bedtime. Stop lorazepam.",
        "escitalopram trazodone lorazepam buspirone-",
        "Generalized anxiety disorder",
    ),
    (
        "uti",
        "en-us",
        185,
        PHONE,
        "Urinary tract infection. Nitrofurantoin 100 milligrams twice daily for five days. Allergic to ciprofloxacin.",
        "nitrofurantoin cephalexin-",
        "Urinary tract infection",
    ),
    (
        "copd",
        "en-gb",
        175,
        NOISY,
        "COPD with more breathlessness. On tiotropium once daily and budesonide formoterol two puffs twice daily. Prednisolone 30 milligrams for five days.",
        "tiotropium budesonide formoterol prednisolone montelukast-",
        "Chronic obstructive pulmonary disease",
    ),
    (
        "osteo",
        "en-us+f3",
        165,
        CLEAN,
        "Osteoporosis. Alendronate 70 milligrams weekly, calcium and vitamin D. Knee pain on meloxicam 7.5 milligrams.",
        "alendronate meloxicam denosumab-",
        "Osteoporosis",
    ),
    (
        "bipolar",
        "en-029",
        170,
        PHONE,
        "Bipolar disorder, stable mood. Lithium 600 milligrams at night and quetiapine 100 milligrams. Lithium level next week.",
        "lithium quetiapine olanzapine-",
        "Bipolar disorder",
    ),
    (
        "diabetes2",
        "en-gb-scotland",
        175,
        QUIET,
        "Type 2 diabetes. Glipizide 5 milligrams daily and sitagliptin 100 milligrams. Hypoglycaemia twice this month. Reduce glipizide.",
        "glipizide sitagliptin pioglitazone-",
        "Type 2 diabetes mellitus",
    ),
    (
        "pain",
        "en-us-nyc",
        175,
        NOISY,
        "Low back pain. Cyclobenzaprine 10 milligrams at night and duloxetine 30 milligrams daily. No oxycodone.",
        "cyclobenzaprine duloxetine oxycodone tizanidine-",
        "Low back pain",
    ),
    (
        "shingles",
        "en-gb-x-rp",
        175,
        PHONE,
        "Shingles on the left chest. Valacyclovir 1 gram three times daily for seven days. Pain controlled with gabapentin.",
        "valacyclovir gabapentin acyclovir-",
        "Herpes zoster",
    ),
    (
        "bph",
        "en-us+m7",
        180,
        CLEAN,
        "Nocturia and urgency. On finasteride 5 milligrams. Add oxybutynin 5 milligrams at night. Recheck PSA.",
        "finasteride oxybutynin tamsulosin-",
        "Benign prostatic hyperplasia",
    ),
    (
        "thyroid2",
        "en-gb+f2",
        170,
        NOISY,
        "Hyperthyroidism. Methimazole 10 milligrams daily and propranolol 20 milligrams twice daily for palpitations.",
        "methimazole propranolol levothyroxine-",
        "Hyperthyroidism",
    ),
    (
        "allergy",
        "en-us+m3",
        180,
        PHONE,
        "Seasonal allergies. Cetirizine 10 milligrams daily and fluticasone nasal spray. Stop loratadine.",
        "cetirizine fluticasone loratadine montelukast-",
        "Seasonal allergic rhinitis",
    ),
)


def text_only(concept: dict) -> dict:
    return {"text": concept["coding"][0]["display"]}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, voice, wpm, (effects, noise), text, drugs, problem in DICTATIONS:
        sample = Sample(
            name=name,
            voice=voice,
            wpm=wpm,
            text=text,
            effects=effects,
            noise=noise,
            patient=("pt-2001", "Alex", "Doe", "unknown", "1960-01-01"),
            conditions=(("", problem, "2020-01-01"),),
            allergies=(),
            observations=(),
            drugs=tuple(
                Drug("", d.strip("-").replace("_", " "), "as directed", not d.endswith("-")) for d in drugs.split()
            ),
        )
        records = bundle(sample)
        for entry in records["entry"]:
            resource = entry["resource"]
            for key in ("medicationCodeableConcept", "code"):
                if key in resource:
                    resource[key] = text_only(resource[key])
        seconds = synthesise(sample, out / f"{name}.wav")
        (out / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
        (out / f"{name}.bundle.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        print(f"{name}: {voice} {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
