"""What a note is drafted from: text and JSON transcripts, the schema's shape, engine choice."""

import json
from pathlib import Path

import pytest

from scribe.config import Settings
from scribe.errors import BadInputError, EngineUnavailableError
from scribe.notes.inputs import load_transcript_file, transcript_from_text
from scribe.notes.registry import choose_note_engine
from scribe.notes.schema import NoteMetadata, SegmentEvidence, SOAPNote, Statement, llm_note_schema, note_from_llm


def test_text_transcript_keeps_speaker_labels_and_lines():
    transcript = transcript_from_text(
        "[doctor] hi , how are you ?\n\n[patient] i have chest pain .\nDoctor: any fever?\nno labels here\n"
    )
    assert [s.speaker for s in transcript.segments] == ["doctor", "patient", "doctor", None]
    assert [s.text for s in transcript.segments] == [
        "hi , how are you ?",
        "i have chest pain .",
        "any fever?",
        "no labels here",
    ]
    assert [s.id for s in transcript.segments] == [0, 1, 2, 3]
    assert transcript.engine == "text"


def test_a_colon_after_an_ordinary_word_is_not_a_speaker():
    transcript = transcript_from_text("Plan: start metformin 500 mg twice daily")
    assert transcript.segments[0].speaker is None
    assert transcript.segments[0].text == "Plan: start metformin 500 mg twice daily"


def test_empty_text_transcript_is_bad_input():
    with pytest.raises(BadInputError, match="empty"):
        transcript_from_text(" \n\n ")


def test_transcript_files(tmp_path: Path):
    text = tmp_path / "visit.txt"
    text.write_text("[doctor] blood pressure is 120 over 80 .\n", encoding="utf-8")
    assert load_transcript_file(text).segments[0].speaker == "doctor"

    good = tmp_path / "t.json"
    good.write_text(
        json.dumps({"engine": "whisper", "segments": [{"id": 0, "start": 0.0, "end": 2.0, "text": "no fever"}]})
    )
    assert load_transcript_file(good).segments[0].text == "no fever"

    for name, content, message in [
        ("bad.json", "{not json", "not valid JSON"),
        ("list.json", "[1, 2]", "not a scribe Transcript"),
        ("noseg.json", '{"engine": "whisper", "segments": []}', "no segments"),
        ("shape.json", '{"segments": [{"id": "x"}]}', "not a scribe Transcript"),
    ]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(BadInputError, match=message):
            load_transcript_file(path)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(BadInputError, match="UTF-8"):
        load_transcript_file(binary)


def test_llm_schema_is_bounded_and_maps_to_a_note():
    schema = llm_note_schema()
    statement = schema["properties"]["plan"]["items"]
    assert schema["properties"]["plan"]["maxItems"] > 0
    assert statement["properties"]["text"]["maxLength"] > 0 and statement["additionalProperties"] is False
    data = {
        "subjective": {"chief_complaint": [{"text": "Chest pain.", "segment_ids": [1]}], "hpi": [], "ros": []},
        "objective": {
            "vitals": [],
            "exam": [],
            "results": [],
            "imaging": [{"text": "Chest film attached.", "segment_ids": [], "attachments": ["image-1"]}],
        },
        "assessment": [],
        "plan": [],
        "allergies": [],
        "medications": [{"text": "Lisinopril 10 mg daily.", "segment_ids": [], "records": ["MedicationStatement/m1"]}],
    }
    note = note_from_llm(data, NoteMetadata(engine="openai", model="m"))
    assert note.subjective.chief_complaint[0].evidence == [SegmentEvidence(segment_id=1, start_char=0, end_char=0)]
    assert note.medications[0].evidence[0].record == "MedicationStatement/m1"
    assert note.objective.imaging[0].evidence[0].attachment == "image-1"
    assert all(s.support == "review" for s in note.statements())


def test_note_json_leaves_out_empty_extras_and_round_trips():
    note = SOAPNote(
        metadata=NoteMetadata(engine="extractive"),
        plan=[
            Statement(
                text="Metformin 500 mg twice daily.",
                dose="500 mg",
                evidence=[SegmentEvidence(segment_id=0, start_char=0, end_char=9)],
            )
        ],
    )
    data = json.loads(note.to_json())
    assert set(data) == {
        "note_type",
        "subjective",
        "objective",
        "assessment",
        "plan",
        "medications",
        "allergies",
        "metadata",
    }
    assert data["plan"][0] == {
        "text": "Metformin 500 mg twice daily.",
        "support": "supported",
        "dose": "500 mg",
        "evidence": [{"segment_id": 0, "start_char": 0, "end_char": 9}],
    }
    assert SOAPNote.model_validate(data) == note


def test_auto_note_engine_prefers_a_configured_server(monkeypatch: pytest.MonkeyPatch):
    assert choose_note_engine(None, Settings()).name == "extractive"
    monkeypatch.setenv("SCRIBE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert choose_note_engine(None, Settings()).name == "openai"
    assert choose_note_engine("extractive", Settings()).name == "extractive"
    with pytest.raises(EngineUnavailableError, match="unknown note engine"):
        choose_note_engine("gpt", Settings())
