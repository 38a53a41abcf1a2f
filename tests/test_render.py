"""Note rendering: the HTML review page and plain text from templates/notes."""

from __future__ import annotations

import html
import re

import pytest

from scribe.errors import BadInputError
from scribe.notes.schema import (
    NoteMetadata,
    Objective,
    RecordEvidence,
    SegmentEvidence,
    SOAPNote,
    Statement,
    Subjective,
)
from scribe.render import available_templates, clock, render_note, span_times
from scribe.transcript import Segment, Transcript, Word

HOSTILE = "<script>alert('x')</script> & \"quotes\""


def transcript() -> Transcript:
    words = [
        Word("I've", 61.0, 61.3),
        Word(" had", 61.3, 61.5),
        Word(" chest", 61.5, 61.9),
        Word(" pain", 61.9, 62.2),
        Word(" " + HOSTILE, 62.2, 63.0),
    ]
    seg = Segment(id=7, start=61.0, end=63.0, text="I've had chest pain " + HOSTILE, speaker="patient", words=words)
    return Transcript(
        text=seg.text, language="en", engine="whisper", model="base", duration_s=63.0, processing_s=1.0, segments=[seg]
    )


def note() -> SOAPNote:
    seg = transcript().segments[0]
    return SOAPNote(
        subjective=Subjective(
            hpi=[
                Statement(
                    text="Reports chest pain " + HOSTILE,
                    evidence=[SegmentEvidence(segment_id=7, start_char=9, end_char=len(seg.text))],
                )
            ]
        ),
        objective=Objective(
            vitals=[
                Statement(
                    text="Blood pressure: 150/90 mmHg.",
                    support="unsupported",
                    reason="number 150 is not in the evidence",
                    evidence=[SegmentEvidence(segment_id=7, start_char=0, end_char=4)],
                )
            ]
        ),
        assessment=[
            Statement(
                text="Hypertension (on record).",
                support="from_records",
                icd10="I10",
                evidence=[RecordEvidence(record="Condition/c1")],
            )
        ],
        metadata=NoteMetadata(engine="extractive", model="rules"),
    )


def test_html_escapes_transcript_and_statement_text():
    page = render_note(note(), transcript(), fmt="html")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<script>" not in page
    assert html.escape("<script>alert('x')</script>") in page or "&lt;script&gt;" in page


def test_html_links_evidence_to_segment_times_and_marks_unsupported():
    page = render_note(note(), transcript(), fmt="html", status="draft", patient="Jane Roe")
    link = re.search(
        r'<a class="evidence" href="#seg-7" title="([^"]*)" data-start="([\d.]+)" data-end="([\d.]+)">'
        r"([^<]+)</a>",
        page,
    )
    assert link, page
    assert link.group(1).startswith("chest pain") and link.group(2) == "61.50" and link.group(4) == "1:01"
    assert 'id="seg-7"' in page
    assert re.search(r'class="statement unsupported"[^>]*>\s*<strong class="flag"[^>]*>Unsupported', page)
    assert "number 150 is not in the evidence" in page
    assert "Condition/c1" in page and "ICD-10 I10" in page
    assert '<span data-testid="note-status">draft</span>' in page and "Jane Roe" in page


def test_text_rendering_marks_and_times():
    text = render_note(note(), transcript(), fmt="txt", status="signed")
    assert text.startswith("PROGRESS NOTE")
    assert "Status: signed" in text
    assert "[UNSUPPORTED: number 150 is not in the evidence] Blood pressure: 150/90 mmHg. [1:01]" in text
    assert "Hypertension (on record). (ICD-10 I10) [records]" in text
    assert "SUBJECTIVE" in text and "(none)" in text  # empty groups say so


def test_templates_are_a_parameter_and_unknown_ones_are_bad_input():
    assert "progress_note" in available_templates("html") and "progress_note" in available_templates("txt")
    with pytest.raises(BadInputError, match="no note template 'poem'.*progress_note"):
        render_note(note(), transcript(), template="poem")
    with pytest.raises(BadInputError, match="format"):
        render_note(note(), transcript(), fmt="pdf")  # type: ignore[arg-type]


def test_span_times_and_clock():
    seg = transcript().segments[0]
    assert span_times(seg, 9, 19) == (61.5, 62.2)
    untimed = Segment(id=0, start=5.0, end=9.0, text="no words here")
    assert span_times(untimed, 0, 2) == (5.0, 9.0)
    assert clock(61.9) == "1:01" and clock(3725) == "1:02:05"


def test_untimed_transcripts_link_by_segment_number():
    untimed = Transcript(
        text="x",
        language="en",
        engine="text",
        model="",
        duration_s=0,
        processing_s=0,
        segments=[Segment(id=7, start=0, end=0, text=transcript().segments[0].text)],
    )
    page = render_note(note(), untimed, fmt="html")
    assert '<a class="evidence" href="#seg-7"' in page and ">#7</a>" in page and "data-start" not in page
