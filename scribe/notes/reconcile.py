"""Medication reconciliation against the prior record, and record facts the visit did not discuss.

A drug said in the visit is `new` (not on record), `stopped`, `changed` (an increase/decrease
was ordered, or a new dose prescribed) or `continued`. A dose that merely differs from the record
is not a change: `record_conflicts` reports it, with both values, for the reviewer to settle.
Medications, allergies and problems on record but never mentioned are listed with
`support="from_records"` and cite the resource. The extractive engine takes its verdicts from here
and grounding its conflicts; both speak the note schema, hence scribe.notes and not scribe.clinical.
"""

from __future__ import annotations

import re

from scribe.clinical.drugs import canonical_drug, class_members
from scribe.clinical.medications import (
    CHANGE_ACTIONS,
    DOSE_CHANGES,
    MedMention,
    dose_quantity,
    doses_per_day,
    drug_display,
    find_medications,
    frequency_of,
    strengths,
)
from scribe.clinical.normalise import normalise
from scribe.notes.schema import Change, RecordConflict, RecordEvidence, Statement
from scribe.records import Allergy, Medication, PatientContext, Problem

INACTIVE_MEDICATION = ("stopped", "completed", "entered-in-error", "cancelled")
INACTIVE_ALLERGY = ("inactive", "resolved")


def record_names(med: Medication) -> set[str]:
    """The canonical names a recorded medication goes by: the product and each ingredient."""
    return {canonical_drug(part) for part in med.name.split(" / ")} | {canonical_drug(med.name)}


def names_drug(med: Medication, canonical: str) -> bool:
    """Whether a recorded medication is the drug `canonical` (an ingredient of it, or the same first word)."""
    names = record_names(med)
    return canonical in names or canonical.split(" ")[0] in {n.split(" ")[0] for n in names}


def record_for(canonical: str, context: PatientContext | None) -> Medication | None:
    return next((med for med in (context.medications if context else []) if names_drug(med, canonical)), None)


def change_for(action: str | None, dose: str | None, record: Medication | None, has_context: bool) -> Change:
    """The reconciliation verdict for one drug from what was said about it and what the record holds."""
    if action == "stop":
        return "stopped"
    if record is None:
        return "new" if has_context or action == "start" else ("changed" if action in DOSE_CHANGES else "continued")
    if record.status in INACTIVE_MEDICATION:
        return "new"
    if action in DOSE_CHANGES:
        return "changed"
    said = dose_quantity(dose)
    if action == "start" and said is not None and said not in _recorded_doses(record):
        return "changed"  # a new dose prescribed for a drug already taken
    return "continued"  # a dose that only differs from the record is a conflict for grounding, not a change


def unmentioned_medications(context: PatientContext | None, mentioned: set[str]) -> list[Statement]:
    out = []
    for med in context.medications if context else []:
        names = {canonical_drug(part) for part in med.name.split(" / ")}
        if names & mentioned or med.status in INACTIVE_MEDICATION:
            continue
        text = med.display or med.name
        if med.dosage:
            text = f"{text}, {med.dosage}"
        out.append(
            Statement(
                text=f"{text[0].upper()}{text[1:]} (on record, not discussed).",
                support="from_records",
                evidence=[RecordEvidence(record=med.resource_id)],
            )
        )
    return out


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def allergy_discussed(allergy: Allergy, substances: list[str]) -> bool:
    target = _words(allergy.substance)
    return any(target & _words(s) or canonical_drug(s) == canonical_drug(allergy.substance) for s in substances)


def unmentioned_allergies(context: PatientContext | None, substances: list[str]) -> list[Statement]:
    out = []
    for allergy in context.allergies if context else []:
        if allergy.status in INACTIVE_ALLERGY or allergy_discussed(allergy, substances):
            continue
        text = f"Allergy to {allergy.substance}"
        if allergy.reaction:
            text += f" ({allergy.reaction})"
        out.append(
            Statement(
                text=text + " (on record).",
                support="from_records",
                evidence=[RecordEvidence(record=allergy.resource_id)],
            )
        )
    return out


def problem_record(code: str, display: str, context: PatientContext | None) -> Problem | None:
    """The recorded problem a spoken one matches: the same or a more specific code, the same ICD-10 category
    with a word in common ("Type 2 diabetes mellitus" E11.9 ~ "... with hyperglycemia" E11.65), or the same words."""
    said = _words(display) - {"disorder", "disease", "syndrome", "unspecified"}
    for problem in context.problems if context else []:
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
    for problem in context.problems if context else []:
        if problem.resource_id in discussed or problem.status in ("resolved", "inactive", "remission"):
            continue
        icd = problem.code if problem.system and "icd" in problem.system.lower() else None
        out.append(
            Statement(
                text=f"{problem.name} (on record, not discussed).",
                support="from_records",
                evidence=[RecordEvidence(record=problem.resource_id)],
                icd10=icd,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Cross-check with the chart: what a statement says of a drug against what the records hold.

_NOT_AN_ORDER = re.compile(r"\b(?:avoid\w*|allerg\w*|intoleran\w*|contraindicat\w*|reaction to)\b")


def _recorded_strengths(med: Medication) -> list[tuple[str, tuple[float, str]]]:
    """Every strength the record states, dosage text first: "500 MG tablet" with "take 2 (1000 mg)" has both."""
    return [s for text in (med.dosage, med.display) if text for s in strengths(normalise(text))]


def _recorded_doses(med: Medication) -> set[tuple[float, str]]:
    return {quantity for _, quantity in _recorded_strengths(med)}


def _recorded_frequency(med: Medication) -> str | None:
    return next((f for t in (med.dosage, med.display) if t and (f := frequency_of(normalise(t)))), None)


def allergy_to(canonical: str, context: PatientContext | None) -> Allergy | None:
    """The active recorded allergy a drug falls under: the same drug, an ingredient of it, or its class."""
    parts = {canonical, *canonical.split("-")}
    for allergy in context.allergies if context else []:
        if allergy.status in INACTIVE_ALLERGY:
            continue
        allergen = canonical_drug(allergy.substance)
        words = {canonical_drug(w) for w in re.findall(r"[a-z][a-z-]+", allergy.substance.lower())}
        if allergen in parts or words & parts or parts & class_members(allergy.substance):
            return allergy
    return None


def _declares_change(mention: MedMention, statement: Statement, evidence: list[str]) -> bool:
    """Said as a change (start, increase, decrease, stop; or reconciled as one): a new value, not a mishearing."""
    if statement.change in ("new", "stopped", "changed") or mention.action in CHANGE_ACTIONS:
        return True
    return any(
        m.action in CHANGE_ACTIONS and canonical_drug(m.canonical) == canonical_drug(mention.canonical)
        for piece in evidence
        for m in find_medications(piece)
    )


def record_conflicts(
    statement: Statement, evidence: list[str], context: PatientContext | None, *, orders: bool
) -> list[RecordConflict]:
    """Where a statement's drugs disagree with the patient's records: dose or frequency other than the active
    record's (unless a change is declared), a cited medication record of another drug, and, when the statement
    is an order or medication list entry (`orders`), a drug the patient is recorded as allergic to.

    `evidence` is the normalised text the statement cites (its wording may declare the change).
    """
    if context is None:
        return []
    claim = normalise(statement.text)
    mentions = [m for m in find_medications(claim) if not m.negated]
    out: list[RecordConflict] = []
    for mention in mentions:
        key = canonical_drug(mention.canonical)
        ordered = orders and mention.action != "stop" and statement.change != "stopped"
        if ordered and not _NOT_AN_ORDER.search(claim):
            out += _allergy_conflict(mention, key, context)
        # the same drug exactly: "insulin" said is no dose of a recorded "insulin glargine"
        records = [m for m in context.medications if m.status not in INACTIVE_MEDICATION and key in record_names(m)]
        if not records or _declares_change(mention, statement, evidence):
            continue
        alone = len(mentions) == 1  # the statement's own dose and frequency fields are this drug's
        out += _dose_conflict(mention.dose or (statement.dose if alone else None), records)
        out += _frequency_conflict(mention.frequency or (statement.frequency if alone else None), records)
    return out + _cited_other_drug(statement, mentions, context)


def _allergy_conflict(mention: MedMention, key: str, context: PatientContext) -> list[RecordConflict]:
    allergy = allergy_to(key, context)
    if allergy is None:
        return []
    recorded = f"allergy to {allergy.substance}" + (f" ({allergy.reaction})" if allergy.reaction else "")
    return [
        RecordConflict(
            field="allergy",
            said=drug_display(mention.name, mention.canonical, capitalise=False),
            records=recorded,
            record=allergy.resource_id,
        )
    ]


def _dose_conflict(said: str | None, records: list[Medication]) -> list[RecordConflict]:
    """A strength no active record of the drug states, in a unit they state one in (combinations left out)."""
    dose = dose_quantity(said)
    if not said or dose is None:
        return []
    known = [m for m in records if " / " not in m.name and any(q[1] == dose[1] for q in _recorded_doses(m))]
    if not known or any(dose in _recorded_doses(m) for m in known):
        return []
    recorded = next(written for written, quantity in _recorded_strengths(known[0]) if quantity[1] == dose[1])
    return [RecordConflict(field="dose", said=said, records=recorded, record=known[0].resource_id)]


def _frequency_conflict(said: str | None, records: list[Medication]) -> list[RecordConflict]:
    """A schedule (doses a day) no active record of the drug has; as-needed records have none to disagree with."""
    per_day = doses_per_day(said)
    scheduled = [(m, f) for m in records if doses_per_day(f := _recorded_frequency(m)) is not None]
    if not said or per_day is None or not scheduled:
        return []
    if any(abs((doses_per_day(f) or 0) - per_day) < 1e-6 for _, f in scheduled):
        return []
    med, recorded = scheduled[0]
    return [RecordConflict(field="frequency", said=said, records=recorded or "", record=med.resource_id)]


def _cited_other_drug(
    statement: Statement, mentions: list[MedMention], context: PatientContext
) -> list[RecordConflict]:
    """A cited medication record that names none of the statement's drugs: the statement and the chart disagree
    on which drug it is."""
    if not mentions:
        return []
    keys = {canonical_drug(m.canonical) for m in mentions}
    cited = {e.record for e in statement.evidence if isinstance(e, RecordEvidence)}
    out = []
    for med in context.medications:
        if med.resource_id in cited and not any(names_drug(med, key) for key in keys):
            said = ", ".join(drug_display(m.name, m.canonical, capitalise=False) for m in mentions)
            out.append(RecordConflict(field="drug", said=said, records=med.display or med.name, record=med.resource_id))
    return out
