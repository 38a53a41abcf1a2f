"""The extractive note engine: a deterministic, CPU-only SOAP draft in which every sentence cites its source.

No model weights: sentences are filed by who said them, when in the visit, and clinical cue
words; facts (vitals, drugs with doses, allergies, problems) are pulled out by vocabulary and
patterns; the patient's first person becomes the note's third person.
"""

from __future__ import annotations

from scribe.notes.attachments import Attachment
from scribe.notes.extractive.objective import exam, results, vitals
from scribe.notes.extractive.plan import allergies, assessment_and_plan, medications
from scribe.notes.extractive.qa import yes_no_pairs
from scribe.notes.extractive.reading import TranscriptReading
from scribe.notes.extractive.subjective import chief_complaint, history, review_of_systems
from scribe.notes.inputs import NoteInput
from scribe.notes.reconcile import unmentioned_allergies, unmentioned_medications, unmentioned_problems
from scribe.notes.schema import AttachmentEvidence, NoteMetadata, Objective, SOAPNote, Statement, Subjective

RULES_VERSION = "extractive-rules-1"


def _dedupe(statements: list[Statement], seen: set[str]) -> list[Statement]:
    """Drop statements whose text (case-insensitive) already appears earlier in the note."""
    out = []
    for s in statements:
        key = " ".join(s.text.lower().split())
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
    return out


def _attachment_statement(attachment: Attachment) -> Statement:
    return Statement(
        text=f"{attachment.label()}: not interpreted — review.",
        support="review",
        evidence=[AttachmentEvidence(attachment=attachment.id)],
    )


class ExtractiveEngine:
    """Rules over the transcript; same input, same note."""

    name = "extractive"
    model: str | None = RULES_VERSION

    def draft(self, note_input: NoteInput, *, template: str = "progress_note") -> SOAPNote:
        context = note_input.context
        enc = TranscriptReading.read(note_input.transcript, context)
        pairs = yes_no_pairs(enc)
        used: set[int] = set()

        vital_signs = vitals(enc)
        lab, imaging = results(enc, used)
        findings = exam(enc, used)
        assessment, plan, discussed = assessment_and_plan(enc, used, context)
        complaint = chief_complaint(enc)
        hpi = history(enc, pairs, used)
        ros = review_of_systems(enc, pairs)
        meds, mentioned = medications(enc, context)
        allergy_list, substances = allergies(enc, pairs)

        meds += unmentioned_medications(context, mentioned)
        allergy_list += unmentioned_allergies(context, substances)
        assessment += unmentioned_problems(context, discussed)
        imaging += [_attachment_statement(a) for a in note_input.attachments]

        seen: set[str] = set()
        subjective = Subjective(
            chief_complaint=_dedupe(complaint, seen), hpi=_dedupe(hpi, seen), ros=_dedupe(ros, seen)
        )
        objective = Objective(
            vitals=_dedupe(vital_signs, seen),
            exam=_dedupe(findings, seen),
            results=_dedupe(lab, seen),
            imaging=_dedupe(imaging, seen),
        )
        return SOAPNote(
            note_type=template,
            subjective=subjective,
            objective=objective,
            assessment=_dedupe(assessment, seen),
            plan=_dedupe(plan, seen),
            medications=_dedupe(meds, set()),
            allergies=_dedupe(allergy_list, set()),
            metadata=NoteMetadata(engine=self.name, model=self.model),
        )
