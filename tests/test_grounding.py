"""The grounding check: statements whose evidence does not back them are marked, never kept as supported."""

from __future__ import annotations

import pytest

from scribe.notes.attachments import Attachment
from scribe.notes.extractive import ExtractiveEngine
from scribe.notes.grounding import ground_note, locate_span
from scribe.notes.inputs import NoteInput, transcript_from_text
from scribe.notes.schema import (
    AttachmentEvidence,
    NoteMetadata,
    RecordEvidence,
    SegmentEvidence,
    SOAPNote,
    Statement,
    Subjective,
    note_from_llm,
)
from scribe.records import Medication, PatientContext, Problem

DIALOGUE = (
    "[doctor] what brings you in today ?\n"
    "[patient] i've had chest pain for two days , no fever though .\n"
    "[doctor] your blood pressure is one forty eight over ninety two .\n"
    "[doctor] i'm going to start lisinopril ten milligrams daily .\n"
    "[patient] okay . i also take metformin five hundred milligrams twice a day .\n"
    "[doctor] any shortness of breath ?\n"
    "[patient] no .\n"
)
CONTEXT = PatientContext(
    patient_id="p1",
    medications=[Medication("atorvastatin", "MedicationStatement/m1", "atorvastatin 40 MG Oral Tablet", "40 mg daily")],
    problems=[Problem("Hyperlipidemia", "Condition/c1", "E78.5")],
)
IMAGE = Attachment(
    id="image-1", filename="cxr.png", media_type="image/png", data=b"", width=1, height=1, source_format="png"
)


def note_input() -> NoteInput:
    return NoteInput(transcript_from_text(DIALOGUE), CONTEXT, [IMAGE])


def span(segment_id: int, text: str, phrase: str) -> SegmentEvidence:
    start = text.index(phrase)
    return SegmentEvidence(segment_id=segment_id, start_char=start, end_char=start + len(phrase))


def judged(text: str, *evidence, support: str = "supported") -> Statement:
    ni = note_input()
    statement = Statement(text=text, support=support, evidence=list(evidence))
    note = SOAPNote(subjective=Subjective(hpi=[statement]), metadata=NoteMetadata(engine="test"))
    return ground_note(note, ni).subjective.hpi[0]


SEG = {s.id: s.text for s in transcript_from_text(DIALOGUE).segments}


@pytest.mark.parametrize(
    "text, evidence, support, reason",
    [
        ("Reports chest pain for 2 days.", [span(1, SEG[1], "i've had chest pain for two days")], "supported", None),
        (
            "Reports chest pain for 3 days.",
            [span(1, SEG[1], "i've had chest pain for two days")],
            "unsupported",
            "number 3",
        ),
        (
            "Blood pressure: 148/92 mmHg.",
            [SegmentEvidence(segment_id=2, start_char=0, end_char=len(SEG[2]))],
            "supported",
            None,
        ),
        (
            "Blood pressure: 148/90 mmHg.",
            [SegmentEvidence(segment_id=2, start_char=0, end_char=len(SEG[2]))],
            "unsupported",
            "number 90",
        ),
        (
            "Start lisinopril 10 mg daily.",
            [span(3, SEG[3], "start lisinopril ten milligrams daily")],
            "supported",
            None,
        ),
        (
            "Start losartan 10 mg daily.",
            [span(3, SEG[3], "start lisinopril ten milligrams daily")],
            "unsupported",
            "losartan",
        ),
        ("Reports fever.", [span(1, SEG[1], "no fever though")], "unsupported", "negates fever"),
        ("Denies fever.", [span(1, SEG[1], "no fever though")], "supported", None),
        (
            "Denies shortness of breath.",
            [
                SegmentEvidence(segment_id=5, start_char=0, end_char=len(SEG[5])),
                SegmentEvidence(segment_id=6, start_char=0, end_char=len(SEG[6])),
            ],
            "supported",
            None,
        ),
        (
            "Denies shortness of breath.",
            [SegmentEvidence(segment_id=5, start_char=0, end_char=len(SEG[5]))],
            "unsupported",
            "does not negate",
        ),
        ("Reports headache.", [span(1, SEG[1], "i've had chest pain for two days")], "unsupported", "headache"),
        (
            "Takes metformin 500 mg twice daily.",
            [span(4, SEG[4], "metformin five hundred milligrams twice a day")],
            "supported",
            None,
        ),
    ],
)
def test_transcript_evidence_must_carry_the_numbers_drugs_findings_and_negation(text, evidence, support, reason):
    statement = judged(text, *evidence)
    assert statement.support == support, getattr(statement, "reason", None)
    if reason:
        assert reason in statement.reason
    else:
        assert getattr(statement, "reason", None) is None


def test_a_finding_noted_with_another_possessive_is_still_backed():
    """ "Swelling in your legs" asked and denied is "denies swelling in her legs" in the note."""
    dialogue = "[doctor] any chest pains or swelling in your legs ?\n[patient] no , not that i've noticed .\n"
    ni = NoteInput(transcript_from_text(dialogue))
    statement = Statement(
        text="Denies chest pains or swelling in her legs.",
        support="supported",
        evidence=[SegmentEvidence(segment_id=s.id, start_char=0, end_char=len(s.text)) for s in ni.transcript.segments],
    )
    note = ground_note(SOAPNote(subjective=Subjective(ros=[statement]), metadata=NoteMetadata(engine="test")), ni)
    assert note.subjective.ros[0].support == "supported", getattr(note.subjective.ros[0], "reason", None)
    reported = Statement(text="Reports swelling in her legs.", support="supported", evidence=statement.evidence)
    note = ground_note(SOAPNote(subjective=Subjective(ros=[reported]), metadata=NoteMetadata(engine="test")), ni)
    assert note.subjective.ros[0].support == "unsupported"


def test_records_images_and_missing_evidence():
    assert (
        judged("Atorvastatin 40 mg daily (on record).", RecordEvidence(record="MedicationStatement/m1")).support
        == "from_records"
    )
    wrong = judged("Atorvastatin 80 mg daily.", RecordEvidence(record="MedicationStatement/m1"))
    assert wrong.support == "unsupported" and "80" in wrong.reason
    image = judged("Chest image: not interpreted — review.", AttachmentEvidence(attachment="image-1"), support="review")
    assert image.support == "review"
    nothing = judged("Patient is well.")
    assert nothing.support == "unsupported" and nothing.reason == "no evidence"


def test_evidence_that_points_nowhere_is_dropped():
    statement = judged(
        "Reports chest pain.",
        SegmentEvidence(segment_id=99, start_char=0, end_char=4),
        RecordEvidence(record="Condition/nope"),
        AttachmentEvidence(attachment="image-9"),
    )
    assert statement.evidence == [] and statement.support == "unsupported"


def test_llm_statements_get_spans_located_and_a_verdict():
    data = {
        "subjective": {
            "chief_complaint": [],
            "hpi": [
                {"text": "Chest pain for 2 days.", "segment_ids": [1]},
                {"text": "Chest pain for 5 days.", "segment_ids": [1]},
            ],
            "ros": [],
        },
        "objective": {
            "vitals": [{"text": "BP 148/92.", "segment_ids": [2]}],
            "exam": [],
            "results": [],
            "imaging": [{"text": "Chest image shows no acute process.", "segment_ids": [], "attachments": ["image-1"]}],
        },
        "assessment": [{"text": "Hyperlipidemia.", "segment_ids": [], "records": ["Condition/c1"]}],
        "plan": [],
        "medications": [],
        "allergies": [],
    }
    note = ground_note(note_from_llm(data, NoteMetadata(engine="openai")), note_input())
    good, bad = note.subjective.hpi
    assert good.support == "supported" and bad.support == "unsupported"
    [evidence] = good.evidence
    assert SEG[1][evidence.start_char : evidence.end_char].startswith("i've had chest pain")
    assert note.objective.vitals[0].support == "supported"
    assert note.objective.imaging[0].support == "review"
    assert note.assessment[0].support == "from_records"


def test_locate_span_picks_the_sentences_that_share_the_words():
    text = "Hello there. My knee hurts when I climb stairs. Thanks for asking."
    segment = transcript_from_text(text).segments[0]
    a, b = locate_span(segment, "Knee pain climbing stairs.")
    assert text[a:b] == "My knee hurts when I climb stairs."
    assert locate_span(segment, "Unrelated words entirely") == (0, len(text))


def test_the_extractive_engine_is_grounded_on_its_own_output():
    ni = note_input()
    note = ground_note(ExtractiveEngine().draft(ni), ni)
    verdicts = {s.text: s.support for s in note.statements()}
    assert verdicts and "unsupported" not in verdicts.values(), verdicts
    assert any(v == "from_records" for v in verdicts.values())
    assert [s.support for s in note.objective.imaging] == ["review"]
