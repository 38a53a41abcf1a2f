"""`scribe bench notes`: item discovery, reference parsing, fact matching and the summary."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from scribe.bench.notes import (
    bench_notes,
    evidence_checks,
    format_table,
    load_items,
    match_facts,
    reference_facts,
    reference_sections,
)
from scribe.errors import BadInputError
from scribe.notes.extractive import ExtractiveEngine
from scribe.notes.inputs import NoteInput, transcript_from_text
from scribe.notes.schema import NoteMetadata, SegmentEvidence, SOAPNote, Statement, Subjective

SAMPLES = Path(__file__).resolve().parent.parent / "audio_samples"

DIALOGUE = (
    "[doctor] hi anna . she is a 60-year-old female here for knee pain .\n"
    "[patient] i've had pain in my right knee for three weeks .\n"
    "[doctor] any fever ?\n"
    "[patient] no .\n"
    "[doctor] let me examine you . your blood pressure is 130 over 80 . there is swelling of the right knee .\n"
    "[doctor] so for your knee pain , i think you have osteoarthritis . i'm going to start you on naproxen "
    "500 mg twice a day .\n"
)
REFERENCE = """CHIEF COMPLAINT

Right knee pain.

HISTORY OF PRESENT ILLNESS

Anna is a 60-year-old female with right knee pain for 3 weeks. She denies fever.

PHYSICAL EXAMINATION

Blood pressure: 130/80 mmHg. Swelling of the right knee.

VITALS

Heart rate: 72 bpm.

ASSESSMENT AND PLAN

Osteoarthritis of the right knee. Start naproxen 500 mg twice daily. Lisinopril 10 mg daily.
"""


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["dataset", "encounter_id", "dialogue", "note"])
        writer.writeheader()
        writer.writerows(rows)


def test_reference_sections_map_headings():
    sections = reference_sections(REFERENCE)
    assert sections["subjective"].startswith("Right knee pain.")
    assert "Anna is a 60-year-old" in sections["subjective"]
    assert "130/80" in sections["objective_exam"] and "72 bpm" in sections["objective_exam"]
    assert sections["objective_results"] == ""
    assert sections["assessment_and_plan"].startswith("Osteoarthritis")


def test_reference_facts_and_matching():
    facts = reference_facts(REFERENCE, reference_sections(REFERENCE)["assessment_and_plan"])
    assert facts["medications"] == [("lisinopril", "lisinopril", "10"), ("naproxen", "naproxen", "500")]
    assert facts["vitals"] == [("Blood pressure", "130/80"), ("Heart rate", "72")]
    assert [p[0] for p in facts["problems"]] == ["Osteoarthritis"]
    note = ExtractiveEngine().draft(NoteInput(transcript_from_text(DIALOGUE)))
    counts = match_facts(facts, note, "dialogue without the heart rate or lisinopril")
    assert counts["medications"][:2] == [1, 2]  # naproxen yes, lisinopril never said
    assert counts["medication_doses"][:2] == [1, 2]
    assert counts["vitals"][:2] == [1, 2]
    assert counts["problems"][:2] == [1, 1]
    stated = match_facts(facts, note, "naproxen 500 blood pressure 130/80")
    assert stated["medications"][2:] == [1, 1] and stated["vitals"][2:] == [1, 1]


def test_bench_on_a_csv(tmp_path: Path):
    source = tmp_path / "mini.csv"
    write_csv(
        source,
        [
            {"dataset": "aci", "encounter_id": "E1", "dialogue": DIALOGUE, "note": REFERENCE},
            {"dataset": "virtscribe", "encounter_id": "E2", "dialogue": DIALOGUE, "note": ""},
        ],
    )
    result = bench_notes(source, ExtractiveEngine())
    first, second = result["items"]
    assert first["name"] == "E1" and first["facts_from"] == "reference"
    assert 0 < first["rouge"]["rouge1"] <= 100 and set(first["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert set(first["section_rouge"]) == {"subjective", "objective_exam", "assessment_and_plan"}
    assert second["facts_from"] == "transcript" and "rouge" not in second
    summary = result["summary"]
    assert summary["items"] == 2 and summary["rouge"]["rouge1"] == first["rouge"]["rouge1"]
    assert summary["grounded_share"] == 1.0 and summary["bad_spans"] == 0 and summary["negation_conflicts"] == 0
    assert summary["recall"]["medication_doses"]["found"] >= 2
    assert summary["latency_s_max"] >= summary["latency_s_mean"] > 0
    json.dumps(result)  # the CLI prints it as JSON
    table = format_table(result)
    assert "E1" in table and "E2" in table and "ROUGE F1" in table


def test_bench_on_a_directory(tmp_path: Path):
    shutil.copy(SAMPLES / "diabetes_visit.txt", tmp_path / "diabetes_visit.txt")
    shutil.copy(SAMPLES / "diabetes_visit.bundle.json", tmp_path / "diabetes_visit.bundle.json")
    (tmp_path / "knee.txt").write_text(DIALOGUE, encoding="utf-8")
    (tmp_path / "knee.note.txt").write_text(REFERENCE, encoding="utf-8")
    (tmp_path / "visit.json").write_text(
        transcript_from_text("Blood pressure 150 over 95. Start amlodipine 5 milligrams daily.").to_json(),
        encoding="utf-8",
    )
    items = load_items(tmp_path)
    assert [i.name for i in items] == ["diabetes_visit", "knee", "visit"]
    assert items[0].context is not None and items[0].reference is None and items[1].reference == REFERENCE
    result = bench_notes(tmp_path, ExtractiveEngine())
    rows = {r["name"]: r for r in result["items"]}
    assert rows["diabetes_visit"]["recall"]["medication_doses"] == [2, 2, 2, 2]
    assert rows["visit"]["recall"]["vitals"][:2] == [1, 1]
    assert "rouge" in rows["knee"]


def test_bad_sources(tmp_path: Path):
    with pytest.raises(BadInputError):
        load_items(tmp_path / "missing.csv")
    with pytest.raises(BadInputError):
        load_items(tmp_path)  # empty directory
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="dialogue"):
        load_items(bad)


def test_checks_count_ungrounded_statements_and_negation_conflicts():
    transcript = transcript_from_text("[patient] i deny chest pain .\n[patient] my knee hurts .")
    span = SegmentEvidence(segment_id=0, start_char=0, end_char=len(transcript.segments[0].text))
    note = SOAPNote(
        subjective=Subjective(
            hpi=[
                Statement(text="Chest pain.", evidence=[span]),
                Statement(text="Knee pain.", evidence=[]),
                Statement(text="Out of range.", evidence=[SegmentEvidence(segment_id=1, start_char=3, end_char=999)]),
            ]
        ),
        metadata=NoteMetadata(engine="fake"),
    )
    checks = evidence_checks(note, transcript)
    assert checks == {"statements": 3, "grounded": 2, "bad_spans": 1, "negation_conflicts": 1}
