"""Prior records: a FHIR R4 Bundle read into a PatientContext (facts for the note, hotwords for ASR).

Parsing is lenient about what we do not use (unknown resource types, extra fields, missing
optional fields) and strict about the structure we rely on: a wrong shape is a RecordsError
that names the entry, the resource and the field. Guarantees:

- the records are a Bundle: a lone resource (a Patient, a Condition, ...) is refused, the message says to wrap it;
- every string scribe reads (names, codes, dosages, values, references) is clean text (`scribe.text`), else
  the Bundle is refused with the entry and field named;
- entries whose status says they are wrong (`entered-in-error`, or a `refuted` verification
  status) are left out;
- a bundle holding records of more than one patient is refused, so one patient's drugs never
  bias another's transcript or note.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scribe.clinical.spoken_names import spoken_drug_name, spoken_problem
from scribe.errors import RecordsError
from scribe.text import clean_text

__all__ = [
    "Allergy",
    "Medication",
    "Observation",
    "PatientContext",
    "Problem",
    "load_records",
    "parse_bundle",
    "read_records",
    "validate_records",
]

READ_TYPES = ("Patient", "Condition", "MedicationStatement", "MedicationRequest", "AllergyIntolerance", "Observation")


@dataclass
class Medication:
    name: str  # the drug as a clinician says it: "metformin"
    resource_id: str  # "MedicationStatement/ms-1"
    display: str | None = None  # the full recorded text: "metformin hydrochloride 500 MG Oral Tablet"
    dosage: str | None = None
    status: str | None = None
    code: str | None = None  # RxNorm code when the record has one, else the first code given
    system: str | None = None


@dataclass
class Problem:
    name: str
    resource_id: str
    code: str | None = None  # ICD-10(-CM) preferred, then SNOMED CT, then whatever is coded
    system: str | None = None
    status: str | None = None  # clinicalStatus code: active, resolved, ...


@dataclass
class Allergy:
    substance: str
    resource_id: str
    reaction: str | None = None
    criticality: str | None = None
    status: str | None = None  # clinicalStatus code


@dataclass
class Observation:
    name: str
    resource_id: str
    value: str | None = None  # "7.9", "150/90" (components), "Ex-smoker"
    unit: str | None = None
    effective: str | None = None
    code: str | None = None  # LOINC, usually


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
    patient_reference: str | None = None  # "Patient/pt-1001", for FHIR output

    def hotwords(self) -> list[str]:
        """Terms worth biasing recognition towards, in order, each once (case-insensitive).

        Medication names as spoken (combination products give one term per ingredient), then
        problem names without coding qualifiers ("Essential (primary) hypertension" ->
        "Essential hypertension"), then allergy substances.
        """
        terms = [part for m in self.medications for part in m.name.split(" / ")]
        terms += [spoken_problem(p.name) for p in self.problems]
        terms += [a.substance for a in self.allergies]
        seen: dict[str, str] = {}
        for term in terms:
            term = " ".join(term.split())
            if term and term.lower() not in seen:
                seen[term.lower()] = term
        return list(seen.values())


def load_records(path: str | os.PathLike[str]) -> PatientContext:
    """Read a FHIR R4 Bundle JSON file (UTF-8, BOM allowed) as `read_records` does; errors name the file."""
    label = os.fsdecode(path)
    try:
        raw = Path(label).read_bytes()
    except FileNotFoundError:
        raise RecordsError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise RecordsError(f"{label}: is a directory, not a FHIR Bundle file") from None
    except OSError as exc:
        raise RecordsError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return read_records(raw, label)


def read_records(raw: bytes, label: str | None = None) -> PatientContext:
    """Prior records as a client sends them (REST body or `--records` file): parsed defensively (depth, NaN,
    duplicate keys), read, then every entry of a type scribe reads validated as FHIR R4. Errors start
    with `label` when given."""
    from scribe.json_input import parse_json

    data = parse_json(raw, what=label or "the records", unique_keys=True, error=RecordsError)
    try:
        context = parse_bundle(data)
        validate_records(data)
    except RecordsError as exc:
        raise RecordsError(f"{label}: {exc}" if label else str(exc)) from None
    return context


VALIDATED_TYPES = (*READ_TYPES, "Medication")
_WRAPPED = '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {...}}]}'


def validate_records(data: dict[str, Any]) -> None:
    """The Bundle (its own fields and entries' fullUrls) and each entry of a type scribe reads must validate
    as FHIR R4 (`fhir.resources.R4B`); the first problem is named. Other resource types are not read, so
    not judged. Call it after `parse_bundle`, whose messages for the shapes it relies on are more exact."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    def check(kind: str, resource: dict[str, Any], where: str) -> None:
        try:
            get_fhir_model_class(kind).model_validate(resource)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
            raise RecordsError(f"{where}: not valid FHIR R4 {kind}: {path or kind}: {first['msg']}") from None

    entries = data.get("entry") or []
    check("Bundle", {**data, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]}, "Bundle")
    for index, entry in enumerate(entries):
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind in VALIDATED_TYPES:
            rid = resource.get("id")
            check(kind, resource, f"entry[{index}] ({kind}/{rid})" if rid else f"entry[{index}] ({kind})")


def parse_bundle(data: object) -> PatientContext:
    """Collect one patient's facts from a parsed Bundle.

    Unknown resource types are ignored; MedicationReferences are resolved against contained
    resources and the bundle's entries (by fullUrl or Type/id).
    """
    if not isinstance(data, dict):
        raise RecordsError(f"expected a FHIR Bundle object, got JSON {_json_type(data)}")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise RecordsError("not a FHIR resource: no resourceType")
    if resource_type != "Bundle":
        wrap = f"; wrap the {resource_type} in one: {_WRAPPED}" if resource_type in VALIDATED_TYPES else ""
        raise RecordsError(f"resourceType is {resource_type!r}: expected a Bundle of prior records{wrap}")
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise RecordsError(f"Bundle.entry must be a list, got {_json_type(entries)}")

    resources: list[_Resource] = []
    for index, entry in enumerate(entries):
        where = f"entry[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise RecordsError(f"{where} has no resource object")
        resource = entry["resource"]
        kind = resource.get("resourceType")
        if not isinstance(kind, str) or not kind:
            raise RecordsError(f"{where}.resource has no resourceType")
        full_url = entry.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise RecordsError(f"{where}.fullUrl must be a string, got {_json_type(full_url)}")
        rid = resource.get("id")
        if rid is not None and not isinstance(rid, str):
            raise RecordsError(f"{where}.resource.id must be a string, got {_json_type(rid)}")
        for path, text in (("resource.resourceType", kind), ("fullUrl", full_url), ("resource.id", rid)):
            clean_text(text, f"{where}.{path}", error=RecordsError)  # they name the entry in every message
        reference = f"{kind}/{rid}" if rid else full_url or f"{kind} at {where}"
        resources.append(_Resource(resource, kind, reference, full_url, f"{where} ({reference})"))

    index_by_key: dict[str, _Resource] = {}
    for res in resources:
        for key in res.keys():
            index_by_key.setdefault(key, res)
    context = PatientContext()
    patients = [res for res in resources if res.kind == "Patient"]
    if patients:
        _read_patient(context, patients[0])
        others = {p.reference for p in patients if not p.keys() & patients[0].keys()}
        if others:
            raise RecordsError(
                f"the bundle holds records of more than one patient ({patients[0].reference}, "
                f"{', '.join(sorted(others))}); give one patient's records"
            )
    for res in resources:
        if res.kind in _READERS and not _skipped(res):
            _check_subject(res, patients[0] if patients else None)
            _READERS[res.kind](context, res, index_by_key)
    return context


_MISSING: Any = object()


@dataclass
class _Resource:
    data: dict[str, Any]
    kind: str
    reference: str  # "Type/id", else the fullUrl
    full_url: str | None
    where: str  # "entry[3] (Condition/c1)", for messages

    def keys(self) -> set[str]:
        keys = {self.reference}
        if self.full_url:
            keys |= {self.full_url, _local_reference(self.full_url)}
        return keys

    def fail(self, path: str, problem: str) -> RecordsError:
        return RecordsError(f"{self.where}: {path} {problem}")

    def get(
        self, path: str, expected: type | tuple[type, ...], value: Any = _MISSING, *, multiline: bool = False
    ) -> Any:
        """`value` (default: the resource's field `path`) checked against `expected`, and clean when a string (one
        line unless `multiline`); None when absent."""
        if value is _MISSING:
            value = self.data.get(path)
        if value is None:
            return None
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            names = " or ".join(dict.fromkeys(_with_article(_JSON_TYPES[t]) for t in kinds))
            raise self.fail(path, f"must be {names}, got {_json_type(value)}")
        if isinstance(value, str):
            clean_text(value, f"{self.where}: {path}", multiline=multiline, error=RecordsError)
        return value

    def items(self, path: str, value: Any = _MISSING) -> list[Any]:
        return self.get(path, list, value) or []

    def concept(self, path: str, value: Any = _MISSING) -> _Concept | None:
        """A CodeableConcept, checked: an object whose text is a string and coding a list of Codings."""
        concept = self.get(path, dict, value)
        if concept is None:
            return None
        text = self.get(f"{path}.text", str, concept.get("text"))
        codings: list[tuple[str | None, str | None, str | None]] = []
        for i, coding in enumerate(self.items(f"{path}.coding", concept.get("coding"))):
            coding = self.get(f"{path}.coding[{i}]", dict, coding)
            codings.append(
                tuple(self.get(f"{path}.coding[{i}].{k}", str, coding.get(k)) for k in ("system", "code", "display"))
            )
        return _Concept(text.strip() if text and text.strip() else None, codings)

    def status(self, path: str) -> str | None:
        """A status as its code: a plain code string, or a CodeableConcept's first code (else its text)."""
        value = self.data.get(path)
        if value is None or isinstance(value, str):
            return clean_text(value, f"{self.where}: {path}", error=RecordsError)
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a code string or a CodeableConcept object, got {_json_type(value)}")
        concept = self.concept(path, value)
        codes = [code for _, code, _ in concept.codings if code] if concept else []
        return codes[0] if codes else (concept.text.lower() if concept and concept.text else None)

    def reference_target(self, path: str) -> tuple[str | None, str | None]:
        """(reference, display) of the Reference in field `path`."""
        ref = self.get(path, dict) or {}
        return (
            self.get(f"{path}.reference", str, ref.get("reference")),
            self.get(f"{path}.display", str, ref.get("display")),
        )


@dataclass
class _Concept:
    text: str | None
    codings: list[tuple[str | None, str | None, str | None]]  # (system, code, display)

    def name(self, prefer: tuple[str, ...] = ()) -> str | None:
        """`text`, else the display of the preferred coding, else of the first coding with one."""
        if self.text:
            return self.text
        displays = [display for _, _, display in self._ranked(prefer) if display and display.strip()]
        return displays[0].strip() if displays else None

    def code(self, prefer: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
        coded = [(code, system) for system, code, _ in self._ranked(prefer) if code]
        return coded[0] if coded else (None, None)

    def _ranked(self, prefer: tuple[str, ...]) -> list[tuple[str | None, str | None, str | None]]:
        def rank(coding: tuple[str | None, str | None, str | None]) -> int:
            system = (coding[0] or "").lower()
            return next((i for i, p in enumerate(prefer) if p in system), len(prefer))

        return sorted(self.codings, key=rank)


_JSON_TYPES = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _with_article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _local_reference(reference: str) -> str:
    """ "https://ehr/fhir/Patient/7/_history/2" -> "Patient/7"; other references unchanged."""
    match = re.search(r"(?:^|/)([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$", reference)
    return match.group(1) if match else reference


def _skipped(res: _Resource) -> bool:
    """Entries recorded in error, or conditions/allergies found not to be true."""
    if "entered-in-error" in (res.status("status"), res.status("clinicalStatus")):
        return True
    return res.status("verificationStatus") in ("entered-in-error", "refuted")


def _check_subject(res: _Resource, patient: _Resource | None) -> None:
    """Refuse a resource that names another Patient than the bundle's (other targets cannot be judged)."""
    path = "patient" if res.kind == "AllergyIntolerance" else "subject"
    target, _ = res.reference_target(path)
    if patient is None or not target or not (patient.data.get("id") or patient.full_url):
        return
    local = _local_reference(target)
    if local.startswith("Patient/") and not {target, local} & patient.keys():
        raise res.fail(path, f"refers to {target}, not to the bundle's patient {patient.reference}")


def _read_patient(context: PatientContext, res: _Resource) -> None:
    context.patient_id = res.data.get("id")
    context.patient_reference = res.reference
    names = [res.get(f"name[{i}]", dict, n) for i, n in enumerate(res.items("name"))]
    official = [n for n in names if n.get("use") == "official"] or names
    if official:
        name = official[0]
        i = names.index(name)
        text = res.get(f"name[{i}].text", str, name.get("text"))
        given = [
            res.get(f"name[{i}].given[{j}]", str, g)
            for j, g in enumerate(res.items(f"name[{i}].given", name.get("given")))
        ]
        family = res.get(f"name[{i}].family", str, name.get("family"))
        context.name = (text or " ".join([*given, family or ""])).strip() or None
    context.birth_date = res.get("birthDate", str)
    context.gender = res.get("gender", str)


def _read_medication(context: PatientContext, res: _Resource, index: dict[str, _Resource]) -> None:
    concept = res.concept("medicationCodeableConcept")
    if concept is None:
        concept = _referenced_medication(res, index)
    display = concept.name(prefer=("rxnorm",)) if concept else None
    if not display:
        return  # nothing to call it by
    code, system = concept.code(prefer=("rxnorm",)) if concept else (None, None)
    dosage = None
    for key in ("dosage", "dosageInstruction"):
        dosages = res.items(key)
        if dosages:
            first = res.get(f"{key}[0]", dict, dosages[0])
            dosage = res.get(f"{key}[0].text", str, first.get("text"), multiline=True)
            break
    context.medications.append(
        Medication(spoken_drug_name(display), res.reference, display, dosage, res.status("status"), code, system)
    )


def _referenced_medication(res: _Resource, index: dict[str, _Resource]) -> _Concept | None:
    """The code of the Medication a medicationReference points at (contained or in the bundle), else its display."""
    target, display = res.reference_target("medicationReference")
    if target and target.startswith("#"):
        for i, item in enumerate(res.items("contained")):
            item = res.get(f"contained[{i}]", dict, item)
            if item.get("id") == target[1:] and item.get("code") is not None:
                concept = res.concept(f"contained[{i}].code", item["code"])
                if concept and concept.name():
                    return concept
    elif target:
        found = index.get(target) or index.get(_local_reference(target))
        if found is not None and found.kind == "Medication" and found.data.get("code") is not None:
            concept = found.concept("code", found.data["code"])
            if concept and concept.name():
                return concept
    return _Concept(display.strip(), []) if display and display.strip() else None


def _read_condition(context: PatientContext, res: _Resource, index: dict[str, _Resource]) -> None:
    concept = res.concept("code")
    prefer = ("icd-10", "icd10", "snomed")
    name = concept.name(prefer) if concept else None
    if concept is not None and name:
        code, system = concept.code(prefer)
        context.problems.append(Problem(name, res.reference, code, system, res.status("clinicalStatus")))


def _read_allergy(context: PatientContext, res: _Resource, index: dict[str, _Resource]) -> None:
    concept = res.concept("code")
    substance = concept.name() if concept else None
    reactions = res.items("reaction")
    reaction_text = None
    if reactions:
        first = res.get("reaction[0]", dict, reactions[0])
        manifestations = [
            res.concept(f"reaction[0].manifestation[{i}]", m)
            for i, m in enumerate(res.items("reaction[0].manifestation", first.get("manifestation")))
        ]
        names = [name for name in (m.name() for m in manifestations if m) if name]
        reaction_text = (
            ", ".join(names)
            if names
            else res.get("reaction[0].description", str, first.get("description"), multiline=True)
        )
        if not substance:
            reaction_substance = res.concept("reaction[0].substance", first.get("substance"))
            substance = reaction_substance.name() if reaction_substance else None
    if substance:
        context.allergies.append(
            Allergy(substance, res.reference, reaction_text, res.get("criticality", str), res.status("clinicalStatus"))
        )


def _read_observation(context: PatientContext, res: _Resource, index: dict[str, _Resource]) -> None:
    concept = res.concept("code")
    name = concept.name(prefer=("loinc",)) if concept else None
    if concept is None or not name:
        return
    value, unit = _observation_value(res, res.data, "")
    if value is None:
        parts, units = [], []
        for i, component in enumerate(res.items("component")):
            part, part_unit = _observation_value(res, res.get(f"component[{i}]", dict, component), f"component[{i}].")
            if part is not None:
                parts.append(part)
                units.append(part_unit)
        if parts:
            value, unit = "/".join(parts), units[0]
    effective = res.get("effectiveDateTime", str) or res.get("effectiveInstant", str)
    if effective is None and res.data.get("effectivePeriod") is not None:
        period = res.get("effectivePeriod", dict)
        effective = res.get("effectivePeriod.start", str, period.get("start"))
    code, _ = concept.code(prefer=("loinc",))
    context.observations.append(Observation(name, res.reference, value, unit, effective, code))


def _observation_value(res: _Resource, holder: dict[str, Any], prefix: str) -> tuple[str | None, str | None]:
    if holder.get("valueQuantity") is not None:
        quantity = res.get(f"{prefix}valueQuantity", dict, holder["valueQuantity"])
        number = res.get(f"{prefix}valueQuantity.value", (int, float), quantity.get("value"))
        unit = res.get(f"{prefix}valueQuantity.unit", str, quantity.get("unit"))
        code = res.get(f"{prefix}valueQuantity.code", str, quantity.get("code"))
        return (str(number) if number is not None else None), unit or code
    if holder.get("valueCodeableConcept") is not None:
        concept = res.concept(f"{prefix}valueCodeableConcept", holder["valueCodeableConcept"])
        return (concept.name() if concept else None), None
    for key, kinds in (("valueString", str), ("valueInteger", int), ("valueBoolean", bool)):
        if holder.get(key) is not None:
            value = res.get(f"{prefix}{key}", kinds, holder[key], multiline=True)
            return (str(value).lower() if isinstance(value, bool) else str(value)), None
    return None, None


_READERS = {
    "Condition": _read_condition,
    "MedicationStatement": _read_medication,
    "MedicationRequest": _read_medication,
    "AllergyIntolerance": _read_allergy,
    "Observation": _read_observation,
}
