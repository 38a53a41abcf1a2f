import json

import pytest

from scribe.errors import BadInputError
from scribe.formats import render
from scribe.transcript import Segment, Transcript, Word, join_segment_texts


def make_transcript() -> Transcript:
    segments = [
        Segment(
            0,
            0.0,
            2.5,
            "Patient reports chest pain.",
            words=[
                Word("Patient", 0.0, 0.4, 0.9),
                Word("reports", 0.4, 0.9),
                Word("chest", 1.0, 1.5),
                Word("pain.", 1.6, 2.5),
            ],
        ),
        Segment(1, 3661.25, 3663.0, "Start metformin 500 mg.", speaker="doctor"),
    ]
    return Transcript(join_segment_texts(segments), "en", "whisper", "whisper-base", 3663.0, 1.5, segments)


def test_json_is_the_contract_shape():
    data = json.loads(render(make_transcript(), "json"))
    assert list(data) == ["text", "language", "engine", "model", "duration_s", "processing_s", "segments"]
    assert data["text"] == "Patient reports chest pain. Start metformin 500 mg."
    assert data["segments"][0]["words"][0] == {"word": "Patient", "start": 0.0, "end": 0.4, "probability": 0.9}
    assert data["segments"][1]["speaker"] == "doctor"


def test_json_round_trip():
    original = make_transcript()
    assert Transcript.from_dict(json.loads(original.to_json())) == original


@pytest.mark.parametrize("bad", [{}, {"segments": [{"id": 1}]}, {"engine": "x", "segments": "nope"}, []])
def test_from_dict_rejects_wrong_shapes(bad):
    with pytest.raises(BadInputError, match="not a scribe Transcript"):
        Transcript.from_dict(bad)


def test_txt():
    assert render(make_transcript(), "txt") == "Patient reports chest pain. Start metformin 500 mg.\n"


def test_srt():
    assert render(make_transcript(), "srt") == (
        "1\n00:00:00,000 --> 00:00:02,500\nPatient reports chest pain.\n\n"
        "2\n01:01:01,250 --> 01:01:03,000\n[doctor] Start metformin 500 mg.\n"
    )


def test_vtt():
    assert render(make_transcript(), "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nPatient reports chest pain.\n\n"
        "01:01:01.250 --> 01:01:03.000\n[doctor] Start metformin 500 mg.\n"
    )


def test_multiline_segment_text_stays_one_cue():
    transcript = make_transcript()
    transcript.segments[0].text = "FINDINGS:\nNo acute disease."
    assert "FINDINGS: No acute disease." in render(transcript, "srt")


def test_join_keeps_paragraph_breaks():
    segments = [Segment(0, 0, 1, "FINDINGS:\n"), Segment(1, 1, 2, "Clear lungs."), Segment(2, 2, 3, "")]
    assert join_segment_texts(segments) == "FINDINGS:\nClear lungs."
