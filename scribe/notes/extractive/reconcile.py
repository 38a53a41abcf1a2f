"""Medication reconciliation against the prior record, and record facts the visit did not discuss.

A drug said in the visit is `new` (not on record), `stopped`, `changed` (dose differs from the
record, or an increase/decrease was ordered) or `continued`. Medications, allergies and problems
on record but never mentioned are listed with `support="from_records"` and cite the resource.
"""

from __future__ import annotations

import re

from scribe.notes.extractive.drugs import drug_lexicon
from scribe.notes.extractive.medications import dose_in_mg
from scribe.notes.schema import RecordEvidence, Statement
from scribe.records import Allergy, Medication, PatientContext, Problem


def canonical_drug(name: str) -> str:
    """A drug name (spoken or from a record) as the lexicon's generic, else lower-cased as given."""
    lexicon = drug_lexicon()
    low = " ".join(name.lower().split())
    return lexicon.get(low) or lexicon.get(low.split(" ")[0], low) if low else low


def record_for(canonical: str, context: PatientContext | None) -> Medication | None:
    if context is None:
        return None
    for med in context.medications:
        names = {canonical_drug(part) for part in med.name.split(" / ")} | {canonical_drug(med.name)}
        if canonical in names or canonical.split(" ")[0] in {n.split(" ")[0] for n in names}:
            return med
    return None


def change_for(action: str | None, dose: str | None, record: Medication | None, has_context: bool) -> str:
    """The reconciliation verdict for one drug from what was said about it and what the record holds."""
    if action == "stop":
        return "stopped"
    if record is None:
        return "new" if has_context or action == "start" else ("changed" if action in ("increase", "decrease")
                                                                else "continued")
    if record.status in ("stopped", "completed", "entered-in-error", "cancelled"):
        return "new"
    if action in ("increase", "decrease"):
        return "changed"
    said = dose_in_mg(dose)
    recorded = dose_in_mg(record.dosage) or dose_in_mg(record.display)
    if said is not None and recorded is not None and abs(said - recorded) > 1e-9:
        return "changed"
    return "continued"


def unmentioned_medications(context: PatientContext | None, mentioned: set[str]) -> list[Statement]:
    out = []
    for med in (context.medications if context else []):
        names = {canonical_drug(part) for part in med.name.split(" / ")}
        if names & mentioned or med.status in ("stopped", "completed", "entered-in-error", "cancelled"):
            continue
        text = med.display or med.name
        if med.dosage:
            text = f"{text}, {med.dosage}"
        out.append(Statement(text=f"{text[0].upper()}{text[1:]} (on record, not discussed).", support="from_records",
                             evidence=[RecordEvidence(record=med.resource_id)]))
    return out


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def allergy_discussed(allergy: Allergy, substances: list[str]) -> bool:
    target = _words(allergy.substance)
    return any(target & _words(s) or canonical_drug(s) == canonical_drug(allergy.substance) for s in substances)


def unmentioned_allergies(context: PatientContext | None, substances: list[str]) -> list[Statement]:
    out = []
    for allergy in (context.allergies if context else []):
        if allergy.status in ("inactive", "resolved") or allergy_discussed(allergy, substances):
            continue
        text = f"Allergy to {allergy.substance}"
        if allergy.reaction:
            text += f" ({allergy.reaction})"
        out.append(Statement(text=text + " (on record).", support="from_records",
                             evidence=[RecordEvidence(record=allergy.resource_id)]))
    return out


def problem_record(code: str, display: str, context: PatientContext | None) -> Problem | None:
    """The recorded problem a spoken one matches: the same or a more specific code, the same ICD-10 category
    with a word in common ("Type 2 diabetes mellitus" E11.9 ~ "... with hyperglycemia" E11.65), or the same words."""
    said = _words(display) - {"disorder", "disease", "syndrome", "unspecified"}
    for problem in (context.problems if context else []):
        recorded = problem.code.replace(".", "") if problem.code else ""
        spoken = code.replace(".", "")
        if spoken and recorded and (recorded.startswith(spoken) or spoken.startswith(recorded)):
            return problem
        if spoken and recorded and recorded[:3] == spoken[:3] and said & _words(problem.name):
            return problem
        if said and said <= _words(problem.name):
            return problem
    return None


def unmentioned_problems(context: PatientContext | None, discussed: set[str]) -> list[Statement]:
    out = []
    for problem in (context.problems if context else []):
        if problem.resource_id in discussed or problem.status in ("resolved", "inactive", "remission"):
            continue
        icd = problem.code if problem.system and "icd" in problem.system.lower() else None
        out.append(Statement(text=f"{problem.name} (on record, not discussed).", support="from_records",
                             evidence=[RecordEvidence(record=problem.resource_id)], icd10=icd))
    return out
