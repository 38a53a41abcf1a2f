"""Assessment, plan, medication list and allergies.

Problems are named with ICD-10-CM codes where the vocabulary knows them; plan sentences are
the clinician's own words in note voice ("we will order an x-ray"); medication orders become
short plan items ("Lisinopril 10 mg.") and every drug said gets one reconciled list entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scribe.clinical.drugs import canonical_drug
from scribe.clinical.findings import find_allergies, find_problems
from scribe.clinical.medications import (
    CHANGE_ACTIONS,
    DOSE_CHANGES,
    ORDERS,
    MedMention,
    drug_details,
    drug_display,
    find_medications,
)
from scribe.clinical.negation import answer_polarity
from scribe.notes.extractive.qa import YesNo
from scribe.notes.extractive.reading import TranscriptReading, statement
from scribe.notes.extractive.rewrite import note_style
from scribe.notes.extractive.sections import DIAGNOSIS_CUE, PLAN, PLAN_ACTION, is_question
from scribe.notes.extractive.subjective import content_score
from scribe.notes.reconcile import change_for, problem_record, record_for
from scribe.notes.schema import Evidence, RecordEvidence, Statement
from scribe.records import PatientContext

MIN_PLAN_SCORE = 1  # clinical content a plan-phase sentence needs (see `content_score`)
_ACTION_RANK = {"stop": 5, "increase": 4, "decrease": 4, "adjust": 4, "start": 3, "continue": 2, "taking": 1, None: 0}
_DICTATED_ASSESSMENT = re.compile(r"^\W*(?:assessment|impression|diagnosis|diagnoses)\b\W*", re.I)
_DICTATED_PLAN = re.compile(
    r"^\W*(?:plan\b\W*|(?:increase|decrease|start|stop|discontinue|continue|refer|order|"
    r"check|schedule|follow up|follow-up|return|repeat|obtain|recheck|begin|add|switch|"
    r"reduce|hold|taper|counsel\w*|advise\w*|recommend\w*)\b)",
    re.I,
)


_FAREWELL = re.compile(
    r"\b(?:take care|nice (?:to see|seeing|meeting)|good to see|have a (?:good|great|nice)|"
    r"any (?:other )?questions|bye)\b"
)


@dataclass
class DrugFacts:
    """Everything said about one drug across the visit; the latest dose and the strongest action win."""

    name: str
    canonical: str
    dose: str | None = None
    route: str | None = None
    frequency: str | None = None
    action: str | None = None
    cited: list[int] = field(default_factory=list)
    doses: list[str] = field(default_factory=list)  # every distinct dose said, in order

    def add(self, mention: MedMention, index: int) -> None:
        if mention.dose and mention.dose not in self.doses:
            self.doses.append(mention.dose)
        self.dose = mention.dose or self.dose
        self.route = mention.route or self.route
        self.frequency = mention.frequency or self.frequency
        if _ACTION_RANK[mention.action] >= _ACTION_RANK[self.action]:
            self.action = mention.action
        self.cited.append(index)

    def describe(self) -> str:
        """ "Lisinopril 40 mg daily", with the earlier dose when it was changed ("(was 20 mg)")."""
        text = " ".join(
            p
            for p in (
                drug_display(self.name, self.canonical),
                drug_details(self.name, self.dose, self.route, self.frequency),
            )
            if p
        )
        earlier = [d for d in self.doses if d != self.dose]
        if earlier and self.action in DOSE_CHANGES:
            text += f" (was {earlier[-1]})"
        return text


def medication_mentions(enc: TranscriptReading) -> list[tuple[int, MedMention]]:
    """Every drug said, except ones said not to be taken without a stop ("never tried X")."""
    out = []
    for i, norm in enumerate(enc.norms):
        if is_question(norm, enc.sentences[i].text) and enc.sentences[i].role != "patient":
            reply = enc.next_turn(i) if enc.is_last_of_turn(i) else []
            denied = bool(reply) and answer_polarity(enc.norms[reply[0]]) == "no"
            mentions = [m for m in find_medications(norm) if m.action in CHANGE_ACTIONS or not denied]
        else:
            mentions = find_medications(norm)
        for mention in mentions:
            if mention.negated and mention.action != "stop":
                continue
            out.append((i, mention))
    return out


def medications(enc: TranscriptReading, context: PatientContext | None) -> tuple[list[Statement], set[str]]:
    """One reconciled entry per drug mentioned, and the set of canonical names mentioned."""
    drugs: dict[str, DrugFacts] = {}
    for i, mention in medication_mentions(enc):
        key = canonical_drug(mention.canonical)
        facts = drugs.setdefault(key, DrugFacts(mention.name, key))
        facts.add(mention, i)
    out = []
    for key, facts in drugs.items():
        record = record_for(key, context)
        change = change_for(facts.action, facts.dose, record, context is not None and bool(context.medications))
        evidence: list[Evidence] = list(enc.evidence(*facts.cited))
        if record is not None:
            evidence.append(RecordEvidence(record=record.resource_id))
        text = facts.describe() + "."
        if change == "stopped":
            text = f"{drug_display(facts.name, facts.canonical)}: stopped."
        out.append(
            Statement(
                text=text,
                support="supported",
                evidence=evidence,
                dose=facts.dose,
                route=facts.route,
                frequency=facts.frequency,
                change=change,
            )
        )
    return out, set(drugs)


def _orders(norm: str) -> list[MedMention]:
    """Medication orders in a sentence: start, change, stop or continue, not negated."""
    return [m for m in find_medications(norm) if m.action in ORDERS and not m.negated]


def _plan_item(mention: MedMention) -> str:
    """A medication order as a plan line: "Lisinopril 10 mg.", "Increase amlodipine to 10 mg.", "Stop naproxen."."""
    name, tail = drug_display(mention.name, mention.canonical, capitalise=False), mention.details()
    if mention.action == "stop":
        return f"Stop {name}."
    if mention.action in DOSE_CHANGES:
        return f"{mention.action.capitalize()} {name}" + (f" to {tail}." if tail else ".")
    if mention.action == "continue":
        return f"Continue {name}" + (f" {tail}." if tail else ".")
    return f"{mention.display} {tail}.".replace(" .", ".")


def _problem_statements(
    enc: TranscriptReading, i: int, seen: set[str], context: PatientContext | None, discussed: set[str], *, file: bool
) -> list[Statement]:
    """Problems named in sentence i, coded and matched to the record; only marked discussed unless `file`."""
    out = []
    for term in find_problems(enc.norms[i]):
        if term.negated:
            continue
        record = problem_record(term.code, term.label, context)
        if record is not None:
            discussed.add(record.resource_id)
        if not file or term.label in seen or (term.code and term.code in seen):
            continue
        seen.update((term.label, term.code))
        evidence: list[Evidence] = list(enc.evidence(i))
        code = term.code or None
        if record is not None:
            evidence.append(RecordEvidence(record=record.resource_id))
            if record.code and record.system and "icd" in record.system.lower():
                code = record.code
        out.append(Statement(text=f"{term.label}.", support="supported", evidence=evidence, icd10=code))
    return out


def assessment_and_plan(
    enc: TranscriptReading, used: set[int], context: PatientContext | None
) -> tuple[list[Statement], list[Statement], set[str]]:
    """(assessment, plan, ids of recorded problems that were discussed).

    Problems are filed from the plan part of a visit (anywhere in a dictation); the clinician's plan-part
    sentences go to the assessment when they reason about a diagnosis, else to the plan. Medication orders
    become plan items wherever the clinician gives them.
    """
    assessment: list[Statement] = []
    plan: list[Statement] = []
    seen: set[str] = set()
    discussed: set[str] = set()
    for i, sentence in enumerate(enc.sentences):
        norm = enc.norms[i]
        in_plan = enc.phases[i] == PLAN and sentence.role != "patient"
        dictated_plan = enc.dictation and bool(_DICTATED_PLAN.match(norm))
        assessment += _problem_statements(enc, i, seen, context, discussed, file=in_plan or enc.dictation)
        if i in used or sentence.role == "patient" or (is_question(norm, sentence.text) and not dictated_plan):
            continue
        orders = _orders(norm)
        plan += [statement(enc, _plan_item(m), [i], dose=m.dose, route=m.route, frequency=m.frequency) for m in orders]
        if orders or (enc.dictation and _DICTATED_ASSESSMENT.match(norm)):
            used.add(i)  # said as a plan item or a coded problem already
            continue
        if not (in_plan or dictated_plan):
            continue
        if not dictated_plan and (content_score(norm) < MIN_PLAN_SCORE or _FAREWELL.search(norm)):
            continue
        diagnosis = DIAGNOSIS_CUE.search(norm) and not PLAN_ACTION.search(norm)
        text = note_style(sentence.text, sentence.role, enc.pronouns, plan=not diagnosis)
        if len(text.split()) < 3:
            continue
        (assessment if diagnosis else plan).append(statement(enc, text, [i]))
        used.add(i)
    return assessment, plan, discussed


def allergies(enc: TranscriptReading, pairs: list[YesNo]) -> tuple[list[Statement], list[str]]:
    """Allergies said in the visit (and "no known allergies"), with the substances named."""
    out: list[Statement] = []
    substances: list[str] = []
    seen: set[str] = set()
    for i, norm in enumerate(enc.norms):
        for term in find_allergies(norm):
            if term.negated or term.label in seen:
                continue
            seen.add(term.label)
            if term.label == "NKDA":
                out.append(statement(enc, "No known drug allergies.", [i]))
                continue
            substances.append(term.label)
            out.append(statement(enc, f"Allergic to {term.label}.", [i]))
    for i, sentence in enumerate(enc.sentences):
        if "NKDA" in seen or substances or sentence.role == "patient" or "allerg" not in enc.norms[i]:
            continue
        if not is_question(enc.norms[i], sentence.text) or not enc.is_last_of_turn(i):
            continue
        reply = enc.next_turn(i)
        if reply and answer_polarity(enc.norms[reply[0]]) == "no" and not find_allergies(enc.norms[reply[0]]):
            seen.add("NKDA")
            out.append(statement(enc, "No known drug allergies.", [i, reply[0]]))
    return out, substances
