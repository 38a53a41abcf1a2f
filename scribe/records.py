"""Prior records: a FHIR R4 Bundle read into a PatientContext (facts for the note, hotwords for ASR).

Parsing is lenient about what we do not use (unknown resource types, extra fields) and
strict about structure we rely on: a wrong shape is a RecordsError that says where.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scribe.errors import RecordsError


@dataclass
class Medication:
    name: str
    resource_id: str
    display: str | None = None
    dosage: str | None = None
    status: str | None = None


@dataclass
class Problem:
    name: str
    resource_id: str
    code: str | None = None
    system: str | None = None
    status: str | None = None


@dataclass
class Allergy:
    substance: str
    resource_id: str
    reaction: str | None = None
    criticality: str | None = None


@dataclass
class Observation:
    name: str
    resource_id: str
    value: str | None = None
    unit: str | None = None
    effective: str | None = None


@dataclass
class PatientContext:
    patient_id: str | None = None
    name: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    medications: list[Medication] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    allergies: list[Allergy] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def hotwords(self) -> list[str]:
        """Names worth biasing recognition towards: medications, problems, allergy substances."""
        seen: dict[str, str] = {}
        for name in (
            [m.name for m in self.medications]
            + [p.name for p in self.problems]
            + [a.substance for a in self.allergies]
        ):
            key = name.strip().lower()
            if key and key not in seen:
                seen[key] = name.strip()
        return list(seen.values())


# Words after which an RxNorm-style display stops naming the drug: strengths, units, forms, salts.
_DOSE = re.compile(r"\b\d[\d.,/]*\s*(mg|mcg|µg|g|ml|unt|units?|%|meq|mg/ml|hr)?\b", re.I)
_FORM_WORDS = {
    "oral", "tablet", "tablets", "capsule", "capsules", "solution", "suspension", "injection", "injectable",
    "extended", "delayed", "release", "film", "coated", "chewable", "topical", "cream", "ointment", "inhaler",
    "inhalation", "powder", "patch", "transdermal", "nasal", "spray", "ophthalmic", "drops", "prefilled",
    "syringe", "pen", "auto-injector", "metered", "dose", "vial", "sublingual", "disintegrating", "er", "xr",
    "sr", "dr", "hfa", "actuat", "product", "pack",
}
_SALTS = {
    "hydrochloride", "hcl", "sodium", "potassium", "calcium", "magnesium", "sulfate", "succinate", "tartrate",
    "besylate", "maleate", "mesylate", "citrate", "acetate", "phosphate", "fumarate", "bromide", "dihydrate",
    "monohydrate", "hyclate", "propionate", "furoate", "bitartrate", "mononitrate",
}


def spoken_drug_name(display: str) -> str:
    """The name a clinician says for an RxNorm-style display: no strength, dose form or salt.

    "metformin hydrochloride 500 MG Oral Tablet" -> "metformin";
    "24 HR tamsulosin 0.4 MG Extended Release Oral Capsule" -> "tamsulosin".
    """
    text = re.sub(r"\[.*?\]|\(.*?\)", " ", display)
    text = _DOSE.sub(" ", text)
    words = [w for w in re.split(r"[\s/]+", text) if w]
    kept: list[str] = []
    for word in words:
        lower = word.lower().strip(",;")
        if lower in _FORM_WORDS and kept:
            break
        if lower in _FORM_WORDS or lower in _SALTS or lower in {"hr", "mg", "ml"} or not lower:
            continue
        kept.append(word.strip(",;"))
    name = " ".join(kept) or display.strip()
    return name.lower() if name.isupper() or name[:1].isupper() and name[1:].islower() else name


def load_records(path: str | os.PathLike[str]) -> PatientContext:
    """Read a FHIR R4 Bundle JSON file; a single resource is read as a one-entry bundle."""
    label = os.fsdecode(path)
    try:
        text = Path(label).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordsError(f"{label}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordsError(f"{label}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{label}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return parse_bundle(data)
    except RecordsError as exc:
        raise RecordsError(f"{label}: {exc}") from None


def parse_bundle(data: object) -> PatientContext:
    """Collect the patient's facts from a Bundle's entries; unknown resource types are ignored."""
    if not isinstance(data, dict):
        raise RecordsError(f"expected a FHIR Bundle object, got JSON {type(data).__name__}")
    resource_type = data.get("resourceType")
    if resource_type is None:
        raise RecordsError("not a FHIR resource: no resourceType")
    if resource_type != "Bundle":
        data = {"resourceType": "Bundle", "entry": [{"resource": data}]}
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise RecordsError("Bundle.entry must be a list")
    resources = []
    for index, entry in enumerate(entries):
        where = f"entry[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise RecordsError(f"{where} has no resource object")
        resource = entry["resource"]
        if not isinstance(resource.get("resourceType"), str):
            raise RecordsError(f"{where}.resource has no resourceType")
        resources.append((where, resource, entry.get("fullUrl")))
    by_reference = {_reference(r, full_url): r for _, r, full_url in resources}
    context = PatientContext()
    for where, resource, full_url in resources:
        try:
            _add(context, resource, _reference(resource, full_url), by_reference)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            raise RecordsError(f"{where} ({resource['resourceType']}) is malformed: {exc}") from None
    return context


def _reference(resource: dict[str, Any], full_url: object) -> str:
    if isinstance(resource.get("id"), str) and resource["id"]:
        return f"{resource['resourceType']}/{resource['id']}"
    return str(full_url) if full_url else f"{resource['resourceType']}/(no id)"


def _concept_text(concept: object) -> str | None:
    """A CodeableConcept's human text: `text`, else the first coding's display, else its code."""
    if concept is None:
        return None
    if not isinstance(concept, dict):
        raise TypeError(f"expected a CodeableConcept object, got {type(concept).__name__}")
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or []
    if not isinstance(codings, list):
        raise TypeError("coding must be a list")
    for coding in codings:
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    for coding in codings:
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"])
    return None


def _first_coding(concept: object, prefer: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    codings = concept.get("coding") or [] if isinstance(concept, dict) else []
    ranked = sorted((c for c in codings if isinstance(c, dict) and c.get("code")),
                    key=lambda c: not any(p in str(c.get("system", "")) for p in prefer))
    return (str(ranked[0]["code"]), ranked[0].get("system")) if ranked else (None, None)


def _status(value: object) -> str | None:
    return value if isinstance(value, str) else _concept_text(value)


def _entered_in_error(resource: dict[str, Any]) -> bool:
    return any(
        s == "entered-in-error"
        for s in (_status(resource.get("status")), _status(resource.get("clinicalStatus")),
                  _status(resource.get("verificationStatus")))
    )


def _medication_display(resource: dict[str, Any], by_reference: dict[str, dict[str, Any]]) -> str | None:
    if "medicationCodeableConcept" in resource:
        return _concept_text(resource["medicationCodeableConcept"])
    reference = resource.get("medicationReference")
    if isinstance(reference, dict):
        target = reference.get("reference", "")
        if isinstance(target, str) and target.startswith("#"):
            contained = {c.get("id"): c for c in resource.get("contained", []) if isinstance(c, dict)}
            medication = contained.get(target[1:])
        else:
            medication = by_reference.get(target)
        if medication is not None and medication.get("code"):
            return _concept_text(medication["code"])
        if reference.get("display"):
            return str(reference["display"])
    return None


def _dosage_text(resource: dict[str, Any]) -> str | None:
    for key in ("dosage", "dosageInstruction"):
        dosages = resource.get(key)
        if isinstance(dosages, list) and dosages and isinstance(dosages[0], dict) and dosages[0].get("text"):
            return str(dosages[0]["text"])
    return None


def _add(context: PatientContext, resource: dict[str, Any], ref: str, by_reference: dict[str, dict[str, Any]]) -> None:
    kind = resource["resourceType"]
    if kind != "Patient" and _entered_in_error(resource):
        return
    if kind == "Patient":
        context.patient_id = resource.get("id")
        names = resource.get("name") or []
        if names:
            name = names[0]
            context.name = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip() or None
        context.birth_date = resource.get("birthDate")
        context.gender = resource.get("gender")
    elif kind in ("MedicationStatement", "MedicationRequest"):
        display = _medication_display(resource, by_reference)
        if display:
            context.medications.append(Medication(spoken_drug_name(display), ref, display, _dosage_text(resource),
                                                  _status(resource.get("status"))))
    elif kind == "Condition":
        name = _concept_text(resource.get("code"))
        if name:
            code, system = _first_coding(resource.get("code"), prefer=("icd-10", "icd10", "snomed"))
            context.problems.append(Problem(name, ref, code, system, _status(resource.get("clinicalStatus"))))
    elif kind == "AllergyIntolerance":
        substance = _concept_text(resource.get("code"))
        if substance:
            reactions = resource.get("reaction") or []
            manifestation = None
            if reactions:
                manifestations = reactions[0].get("manifestation") or []
                manifestation = _concept_text(manifestations[0]) if manifestations else reactions[0].get("description")
            context.allergies.append(Allergy(substance, ref, manifestation, resource.get("criticality")))
    elif kind == "Observation":
        name = _concept_text(resource.get("code"))
        if name:
            value, unit = _observation_value(resource)
            context.observations.append(Observation(name, ref, value, unit, resource.get("effectiveDateTime")))


def _observation_value(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    if isinstance(resource.get("valueQuantity"), dict):
        quantity = resource["valueQuantity"]
        return (str(quantity["value"]) if "value" in quantity else None), quantity.get("unit") or quantity.get("code")
    if "valueString" in resource:
        return str(resource["valueString"]), None
    if "valueCodeableConcept" in resource:
        return _concept_text(resource["valueCodeableConcept"]), None
    components = resource.get("component") or []
    parts = []
    for component in components:
        quantity = component.get("valueQuantity") or {}
        if "value" in quantity:
            parts.append(str(quantity["value"]))
    if parts:
        unit = (components[0].get("valueQuantity") or {}).get("unit")
        return "/".join(parts), unit
    return None, None
