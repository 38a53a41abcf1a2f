"""Words a note can trust: a statement that contradicts the patient's records is a `conflict` (never `supported`)
with both values shown and confirmed before signing; critical words heard with low confidence are carried for
the reviewer. The conflict set runs through the real drafting path (extractive) and through grounding (an
LLM-style note), with controls that must not be flagged."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from scribe.notes.confidence import LOW_CONFIDENCE
from scribe.notes.draft import draft_note
from scribe.notes.grounding import ground_note
from scribe.notes.inputs import NoteInput, transcript_from_text
from scribe.notes.schema import NoteMetadata, SOAPNote, note_from_llm
from scribe.records import PatientContext, parse_bundle
from scribe.render import render_note
from scribe.transcript import Segment, Transcript, Word
from tests.helpers.clinic import DR_A, new_encounter
from tests.test_records import RXNORM, bundle, coded, status

PATIENT = {"resourceType": "Patient", "id": "pt-7", "name": [{"family": "Roe", "given": ["Jane"]}]}


def medication(rid: str, display: str, dosage: str, kind: str = "MedicationStatement") -> dict:
    resource = {
        "resourceType": kind,
        "id": rid,
        "status": "active",
        "subject": {"reference": "Patient/pt-7"},
        "medicationCodeableConcept": coded(RXNORM, "0", display),
    }
    if kind == "MedicationRequest":
        return {**resource, "intent": "order", "dosageInstruction": [{"text": dosage}]}
    return {**resource, "dosage": [{"text": dosage}]}


def allergy(rid: str, substance: str, reaction: str = "Hives") -> dict:
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "patient": {"reference": "Patient/pt-7"},
        "clinicalStatus": status("allergyintolerance-clinical", "active"),
        "code": {"text": substance},
        "reaction": [{"manifestation": [{"text": reaction}]}],
    }


NAPROXEN = medication("m1", "naproxen 500 MG Oral Tablet", "500 mg by mouth twice daily")
METFORMIN = medication(
    "m2", "metformin hydrochloride 500 MG Oral Tablet", "500 mg twice daily with meals", "MedicationRequest"
)
LISINOPRIL = medication("m3", "lisinopril 10 MG Oral Tablet", "10 mg daily")
ATORVASTATIN = medication("m4", "atorvastatin 40 MG Oral Tablet", "40 mg at bedtime")


@dataclass
class Case:
    name: str
    dialogue: str
    records: list[dict]
    conflicts: set[tuple[str, str, str]]  # (field, said, records) expected; empty for a control


CASES = [
    # the tester's case: misheard dose and frequency of a recorded drug
    Case(
        "dose and frequency misheard",
        "[doctor] what do you take for the knee ?\n[patient] i take naproxen one hundred milligrams daily .\n",
        [NAPROXEN],
        {("dose", "100 mg", "500 mg"), ("frequency", "daily", "twice daily")},
    ),
    Case(
        "dose misheard",
        "[doctor] and your blood pressure pill ?\n[patient] lisinopril forty milligrams every day .\n",
        [LISINOPRIL],
        {("dose", "40 mg", "10 mg")},
    ),
    Case(
        "frequency misheard",
        "[doctor] continue metformin five hundred milligrams once a day .\n",
        [METFORMIN],
        {("frequency", "daily", "twice daily")},
    ),
    Case(
        "allergen prescribed",
        "[doctor] for the sinusitis i'm going to start amoxicillin five hundred milligrams three times a day .\n",
        [allergy("a1", "Penicillin")],
        {("allergy", "amoxicillin", "allergy to Penicillin (Hives)")},
    ),
    Case(
        "allergen prescribed by class",
        "[doctor] i'm going to prescribe ibuprofen six hundred milligrams three times a day for the pain .\n",
        [allergy("a2", "NSAIDs", "Angioedema")],
        {("allergy", "ibuprofen", "allergy to NSAIDs (Angioedema)")},
    ),
    # controls: nothing here disagrees with the chart
    Case(
        "dose change declared",
        "[doctor] your pressure is high , so let's increase the lisinopril to forty milligrams daily .\n",
        [LISINOPRIL],
        set(),
    ),
    Case(
        "titration declared",
        "[doctor] we will titrate the naproxen down to two hundred fifty milligrams twice a day .\n",
        [NAPROXEN],
        set(),
    ),
    Case(
        "same dose in other units",
        "[doctor] what do you take for the knee ?\n[patient] naproxen zero point five grams twice a day .\n",
        [NAPROXEN],
        set(),
    ),
    Case(
        "same dose and frequency in other words",
        "[doctor] you take metformin five hundred milligrams two times a day , right ?\n[patient] yes .\n",
        [METFORMIN],
        set(),
    ),
    Case(
        "same schedule as hours",
        "[patient] i take my naproxen five hundred milligrams every twelve hours .\n",
        [NAPROXEN],
        set(),
    ),
    Case(
        "same schedule, said as a time of day",
        "[doctor] keep taking atorvastatin forty milligrams every night .\n",
        [ATORVASTATIN],
        set(),
    ),
    Case(
        "another insulin than the recorded one",
        "[patient] i use insulin lispro five units with meals .\n",
        [medication("m5", "insulin glargine 100 UNT/ML Injectable Solution", "20 units at bedtime")],
        set(),
    ),
    Case("drug stopped", "[doctor] stop the naproxen because of your stomach .\n", [NAPROXEN], set()),
    Case(
        "allergy discussed, not ordered",
        "[doctor] you are allergic to penicillin , so no amoxicillin for you .\n",
        [allergy("a1", "Penicillin")],
        set(),
    ),
]


def context_of(case: Case) -> PatientContext:
    return parse_bundle(bundle(PATIENT, *case.records))


def found(note: SOAPNote) -> set[tuple[str, str, str]]:
    return {(c.field, c.said, c.records) for s in note.statements() for c in s.conflicts or []}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_extractive_draft_never_presents_a_contradiction_of_the_chart_as_supported(case: Case, settings):
    note = draft_note(NoteInput(transcript_from_text(case.dialogue), context_of(case)), settings, engine="extractive")
    assert found(note) == case.conflicts
    for statement in note.statements():
        if statement.conflicts:
            assert statement.support == "conflict", statement
            assert all(c.record.split("/")[1] in {r["id"] for r in case.records} for c in statement.conflicts)
        else:
            assert statement.support != "conflict", statement
    if case.conflicts:
        assert any(s.support == "conflict" for s in note.plan + note.medications)


def test_the_conflict_set_as_a_whole(settings):
    """The figures the issue asks for: no recorded contradiction marked supported, no control flagged."""
    missed = false = 0
    for case in CASES:
        note = draft_note(
            NoteInput(transcript_from_text(case.dialogue), context_of(case)), settings, engine="extractive"
        )
        flagged = [s for s in note.statements() if s.support == "conflict"]
        if case.conflicts:
            missed += not flagged or any(s.support == "supported" for s in note.plan + note.medications)
        else:
            false += len(flagged)
    assert (missed, false) == (0, 0)


DIALOGUE = (
    "[doctor] what do you take ?\n"
    "[patient] naproxen one hundred milligrams daily and metoprolol fifty milligrams .\n"
    "[doctor] we will start amoxicillin five hundred milligrams three times a day .\n"
    "[doctor] increase the lisinopril to twenty milligrams daily .\n"
    "[doctor] and we will titrate the naproxen down to two hundred fifty milligrams twice a day .\n"
)


def llm_note(context: PatientContext) -> SOAPNote:
    """What a MedGemma-style engine returns: statements citing segment ids and records, no verdicts."""

    def item(text: str, segments: list[int], records: list[str] | None = None) -> dict:
        return {"text": text, "segment_ids": segments, **({"records": records} if records else {})}

    data = {
        "subjective": {"chief_complaint": [], "hpi": [item("Takes naproxen 100 mg daily.", [1])], "ros": []},
        "objective": {"vitals": [], "exam": [], "results": [], "imaging": []},
        "assessment": [],
        "plan": [
            item("Start amoxicillin 500 mg three times daily.", [2]),
            item("Naproxen 250 mg twice daily.", [4]),  # the change is declared by the words it cites
            item("Increase lisinopril to 20 mg daily.", [3], ["MedicationStatement/m3"]),
        ],
        "medications": [
            item("Naproxen 100 mg daily.", [1], ["MedicationStatement/m1"]),
            item("Metoprolol 50 mg.", [1], ["MedicationStatement/m3"]),
            item("Naproxen 500 mg twice daily.", [], ["MedicationStatement/m1"]),
        ],
        "allergies": [item("Allergic to penicillin.", [], ["AllergyIntolerance/a1"])],
    }
    return note_from_llm(data, NoteMetadata(engine="medgemma"))


def test_grounding_finds_conflicts_in_an_llm_note():
    context = parse_bundle(bundle(PATIENT, NAPROXEN, LISINOPRIL, allergy("a1", "Penicillin")))
    note = ground_note(llm_note(context), NoteInput(transcript_from_text(DIALOGUE), context))
    verdicts = {
        s.text: (s.support, {(c.field, c.said, c.records, c.record) for c in s.conflicts or []})
        for s in note.statements()
    }
    assert verdicts["Takes naproxen 100 mg daily."] == (
        "conflict",
        {
            ("dose", "100 mg", "500 mg", "MedicationStatement/m1"),
            ("frequency", "daily", "twice daily", "MedicationStatement/m1"),
        },
    )
    assert verdicts["Naproxen 100 mg daily."][0] == "conflict"
    assert verdicts["Start amoxicillin 500 mg three times daily."] == (
        "conflict",
        {("allergy", "amoxicillin", "allergy to Penicillin (Hives)", "AllergyIntolerance/a1")},
    )
    # cites the lisinopril record for another drug
    assert verdicts["Metoprolol 50 mg."] == (
        "conflict",
        {("drug", "metoprolol", "lisinopril 10 MG Oral Tablet", "MedicationStatement/m3")},
    )
    # controls: a declared change, the record's own values, an allergy statement
    assert verdicts["Increase lisinopril to 20 mg daily."] == ("supported", set())
    assert verdicts["Naproxen 250 mg twice daily."] == ("supported", set())
    assert verdicts["Naproxen 500 mg twice daily."] == ("from_records", set())
    assert verdicts["Allergic to penicillin."] == ("from_records", set())
    assert "said 100 mg, records 500 mg" in note.subjective.hpi[0].reason


def test_a_statement_without_records_has_nothing_to_conflict_with():
    note = ground_note(llm_note(PatientContext()), NoteInput(transcript_from_text(DIALOGUE), PatientContext()))
    assert not any(s.support == "conflict" or s.conflicts for s in note.statements())


def conflicting_note(settings) -> tuple[SOAPNote, Transcript]:
    transcript = transcript_from_text(CASES[0].dialogue)
    return draft_note(NoteInput(transcript, context_of(CASES[0])), settings, engine="extractive"), transcript


def test_renderings_show_both_values(settings):
    note, transcript = conflicting_note(settings)
    text = render_note(note, transcript, fmt="txt")
    assert "statement(s) conflict with the patient's records" in text
    assert (
        "- [CONFLICTS WITH RECORDS: dose said 100 mg, records 500 mg (MedicationStatement/m1); frequency said "
        "daily, records twice daily (MedicationStatement/m1)] Naproxen 100 mg daily."
    ) in text
    html = render_note(note, transcript, fmt="html")
    assert '<li class="statement conflict" data-support="conflict">' in html
    assert (
        '<li data-field="dose">Dose: said <strong class="said">100 mg</strong>, records '
        '<strong class="records">500 mg</strong>'
    ) in html
    assert "Conflicts with records</strong>" in html


def test_the_json_shape(settings):
    note, _ = conflicting_note(settings)
    entry = next(s for s in note.to_dict()["medications"] if s["support"] == "conflict")
    assert entry["conflicts"] == [
        {"field": "dose", "said": "100 mg", "records": "500 mg", "record": "MedicationStatement/m1"},
        {"field": "frequency", "said": "daily", "records": "twice daily", "record": "MedicationStatement/m1"},
    ]
    assert entry["change"] == "continued"  # a dose that only differs from the record is no declared change
    assert "low_confidence" not in entry  # a text transcript has no word probabilities
    assert all("conflicts" not in s for s in note.to_dict()["allergies"])
    assert SOAPNote.model_validate(note.to_dict()).medications[0].conflicts[0].record == "MedicationStatement/m1"


# ---------------------------------------------------------------------------------------------- low confidence


def heard(text: str, probabilities: dict[str, float]) -> Segment:
    """A segment with word timings; words named in `probabilities` get that probability, the others 0.95."""
    words, clock = [], 0.0
    for token in text.split():
        words.append(Word(f" {token}", clock, clock + 0.3, probabilities.get(token, 0.95)))
        clock += 0.3
    return Segment(0, 0.0, clock, text, "patient", words)


def test_low_confidence_critical_words_are_carried_for_the_reviewer(settings):
    below, above = LOW_CONFIDENCE - 0.01, LOW_CONFIDENCE + 0.01
    segment = heard(
        "I take naproxen 100 milligrams twice a day and no aspirin.",
        {"take": 0.2, "100": 0.31, "milligrams": below, "twice": 0.4, "naproxen": above, "no": 0.3},
    )
    transcript = Transcript(segment.text, "en", "whisper", "test", segment.end, 0.0, [segment])
    context = parse_bundle(bundle(PATIENT, NAPROXEN))
    note = draft_note(NoteInput(transcript, context), settings, engine="extractive")
    entry = next(s for s in note.medications if s.text.startswith("Naproxen"))
    flagged = {(w.text, w.probability) for w in entry.low_confidence}
    # "take" is unsure but not critical; "naproxen" is critical but sure enough
    assert flagged == {("100", 0.31), ("milligrams", round(below, 3)), ("twice", 0.4), ("no", 0.3)}
    for word in entry.low_confidence:
        assert segment.text[word.start_char : word.end_char] == word.text and word.segment_id == 0
    assert entry.support == "conflict"  # 100 mg against the record's 500 mg, flagged words or not
    assert '[low confidence: "100" 31%' in render_note(note, transcript, fmt="txt")
    assert 'class="low-confidence" href="#seg-0" title="recognised with 31% confidence">100</a>' in render_note(
        note, transcript, fmt="html"
    )


def test_an_llm_note_gets_low_confidence_words_from_its_cited_segment():
    segment = heard("Start amoxicillin 500 mg three times a day.", {"amoxicillin": 0.12, "day.": 0.2})
    transcript = Transcript(segment.text, "en", "medasr", "test", segment.end, 0.0, [segment])
    data = {
        "subjective": {"chief_complaint": [], "hpi": [], "ros": []},
        "objective": {"vitals": [], "exam": [], "results": [], "imaging": []},
        "assessment": [],
        "plan": [{"text": "Amoxicillin 500 mg three times daily.", "segment_ids": [0]}],
        "medications": [],
        "allergies": [],
    }
    note = ground_note(note_from_llm(data, NoteMetadata(engine="openai")), NoteInput(transcript, None))
    assert [(w.text, w.probability) for w in note.plan[0].low_confidence] == [("amoxicillin", 0.12), ("day.", 0.2)]
    assert note.plan[0].support == "supported"


# ---------------------------------------------------------------------------------------------- signing and FHIR


def test_sign_needs_confirmation_of_conflicts_and_the_fhir_renderings_show_them(api: TestClient):
    from scribe.encounters import save_transcript
    from scribe.store.models import Encounter

    encounter = new_encounter(api, patient="pt-7")
    records = json.dumps(bundle(PATIENT, NAPROXEN)).encode()
    response = api.post(
        f"/v1/encounters/{encounter}/records",
        content=records,
        headers={**DR_A, "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
    with api.app.state.database.session() as session, session.begin():
        save_transcript(
            session, session.get(Encounter, encounter), transcript_from_text(CASES[0].dialogue), source="upload"
        )
    draft = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A)
    assert draft.status_code == 201, draft.text
    note_id = draft.json()["id"]
    statements = SOAPNote.model_validate(draft.json()["note"]).statements()
    assert not any(s.support == "unsupported" for s in statements)
    conflicting = [s for s in statements if s.support == "conflict"]
    assert len(conflicting) == 2 and all(s.conflicts for s in conflicting)  # the HPI sentence and the list entry

    text = api.get(f"/fhir/Binary/{note_id}-text", headers=DR_A)
    assert text.status_code == 200 and "[CONFLICTS WITH RECORDS: dose said 100 mg, records 500 mg" in text.text
    html = api.get(f"/fhir/Binary/{note_id}-html", headers=DR_A).text
    assert 'data-support="conflict"' in html and '<strong class="records">500 mg</strong>' in html

    refused = api.post(f"/v1/notes/{note_id}/sign", headers=DR_A)
    assert refused.status_code == 409
    message = refused.json()["issue"][0]["diagnostics"]
    assert "0 statement(s) are not supported by their evidence" in message
    assert f"and {len(conflicting)} conflict with the patient's records" in message
    assert '"confirm_unsupported": true' in message
    assert api.post(f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": False}, headers=DR_A).status_code == 409
    signed = api.post(f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": True}, headers=DR_A)
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    assert "[CONFLICTS WITH RECORDS:" in api.get(f"/fhir/Binary/{note_id}-text", headers=DR_A).text


def test_the_html_rendering_underlines_low_confidence_words_in_the_transcript(settings):
    segment = heard("I take naproxen 100 mg <b>daily</b>.", {"100": 0.31, "naproxen": 0.4, "I": 0.1})
    transcript = Transcript(segment.text, "en", "whisper", "test", segment.end, 0.0, [segment])
    note = draft_note(NoteInput(transcript, context_of(CASES[0])), settings, engine="extractive")
    html = render_note(note, transcript, fmt="html")
    line = next(line for line in html.splitlines() if line.startswith('<li id="seg-0"'))
    assert (
        'I take <u class="low-confidence" title="recognised with 40% confidence">naproxen</u> '
        '<u class="low-confidence" title="recognised with 31% confidence">100</u> mg &lt;b&gt;daily&lt;/b&gt;.'
    ) in line  # "I" is unsure but not critical; the transcript's own markup stays text
