"""Free text is stored clean: control characters and bidi overrides are refused with the field named, tab and
newline only where text spans lines; numeric query parameters are finite."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from scribe.errors import BadInputError, RecordsError
from scribe.text import clean_text
from tests.conftest import SAMPLES
from tests.helpers.clinic import DR_A, spoken_encounter, transcribed_encounter

HOSTILE = [
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


@pytest.mark.parametrize("char", HOSTILE)
def test_every_hostile_character_is_refused_with_the_field_named(char):
    for multiline in (False, True):
        with pytest.raises(BadInputError, match=rf"^plan\[0\]\.text: contains U\+{ord(char[0]):04X} "):
            clean_text(f"Amlodipine{char}5 mg", "plan[0].text", multiline=multiline)


def test_tab_and_newline_only_where_text_spans_lines():
    assert clean_text("line one\n\tline two", "text", multiline=True) == "line one\n\tline two"
    for char in "\n\t\r":
        with pytest.raises(BadInputError, match="one line of text"):
            clean_text(f"Jane{char}Roe", "patient.name")
    with pytest.raises(BadInputError, match="U\\+000D"):
        clean_text("windows\r\nline", "text", multiline=True)
    assert clean_text("Zoë Ångström-Núñez 李", "patient.name") == "Zoë Ångström-Núñez 李"
    assert clean_text(None, "patient.name") is None


def test_a_caller_chooses_the_error_a_refusal_raises():
    """Records, for one, refuse with a RecordsError (still bad input: 422, exit 3) so the file's name is put first."""
    with pytest.raises(RecordsError, match=r"^entry\[1\] \(Condition/c1\): code.text: contains U\+202E "):
        clean_text("Gout\u202e", "entry[1] (Condition/c1): code.text", error=RecordsError)
    assert clean_text("Gout", "code.text", error=RecordsError) == "Gout"


def _draft(api: TestClient) -> tuple[str, str, dict]:
    encounter = spoken_encounter(api)
    draft = api.post(f"/v1/encounters/{encounter}/note", headers=DR_A).json()
    return encounter, draft["id"], draft["note"]


def _refused(response, field: str) -> None:
    assert response.status_code == 422, response.text
    message = response.json()["issue"][0]["diagnostics"]
    assert field in message and "contains U+" in message, message


def test_names_and_notes_with_hostile_text_are_refused_and_nothing_is_stored(api: TestClient):
    _refused(
        api.post("/v1/encounters", json={"patient": {"id": "pt-1", "name": "Jane\u202eeoR"}}, headers=DR_A),
        "patient.name",
    )
    _refused(
        api.post("/v1/encounters", json={"patient": {"id": "pt-1", "name": "Jane\x00Roe"}}, headers=DR_A),
        "patient.name",
    )
    assert api.get("/v1/encounters", headers=DR_A).json()["total"] == 0

    encounter, note_id, note = _draft(api)
    _refused(
        api.patch(f"/v1/encounters/{encounter}", json={"patient": {"id": "pt-1", "name": "A\x1bB"}}, headers=DR_A),
        "patient.name",
    )
    bundle = json.loads((SAMPLES / "cardiology_followup.bundle.json").read_text())
    bundle["entry"][0]["resource"]["name"] = [{"text": "Jane \u2067Roe"}]
    unnamed = api.post("/v1/encounters", json={}, headers=DR_A).json()["id"]
    _refused(  # the Bundle is refused as a whole, naming the field by its place in the Bundle
        api.post(f"/v1/encounters/{unnamed}/records", json=bundle, headers=DR_A),
        "entry[0] (Patient/pt-1001): name[0].text",
    )
    assert api.get(f"/v1/encounters/{unnamed}", headers=DR_A).json()["patient"] == {"id": None, "name": None}

    etag = 'W/"1"'
    for section, change, field in [
        ("plan", {"text": "Return in 4 weeks\x00"}, "plan[0].text"),
        ("plan", {"text": "Return in 4 weeks.", "dose": "5\u202emg"}, "plan[0].dose"),
        ("plan", {"text": "Return in 4 weeks.", "custom": {"note": ["ok", "bad\x08"]}}, "plan[0].custom.note[1]"),
    ]:
        edited = json.loads(json.dumps(note))
        edited[section] = [{**change, "evidence": []}]
        _refused(api.put(f"/v1/notes/{note_id}", json=edited, headers={**DR_A, "If-Match": etag}), field)
    _refused(
        api.put(f"/v1/notes/{note_id}", json={"note": note, "addendum": "x\u202d"}, headers={**DR_A, "If-Match": etag}),
        "addendum",
    )
    _refused(api.post(f"/v1/notes/{note_id}/sign", json={"attestation": "I attest\x00"}, headers=DR_A), "attestation")
    assert api.get(f"/v1/notes/{note_id}", headers=DR_A).json()["version"] == 1  # nothing was saved

    multi_line = json.loads(json.dumps(note))
    multi_line["plan"] = [{"text": "Return in 4 weeks.\n\tSooner if worse.", "evidence": []}]
    saved = api.put(f"/v1/notes/{note_id}", json=multi_line, headers={**DR_A, "If-Match": etag})
    assert saved.status_code == 200 and saved.json()["note"]["plan"][0]["text"].endswith("\tSooner if worse.")
    signed = api.post(
        f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": True, "attestation": "Seen.\nOK"}, headers=DR_A
    )
    assert signed.status_code == 200, signed.text
    _refused(api.post(f"/v1/notes/{note_id}/amend", json={"reason": "typo\u2066"}, headers=DR_A), "reason")
    _refused(api.post(f"/v1/notes/{note_id}/addendum", json={"text": "BP at home \x1b[2J"}, headers=DR_A), "text")
    _refused(api.post(f"/v1/notes/{note_id}/addendum", json={"text": "ok", "reason": "\x00"}, headers=DR_A), "reason")
    extra = api.post(f"/v1/notes/{note_id}/addendum", json={"text": "BP at home:\n\t130/80"}, headers=DR_A)
    assert extra.status_code == 201 and extra.json()["addendum"] == "BP at home:\n\t130/80"


@pytest.mark.slow  # transcribes the sample with the bundled Whisper
def test_audio_span_times_must_be_finite(api: TestClient):
    encounter = transcribed_encounter(api)
    for query in (
        "start=inf",
        "start=nan",
        "start=1e309",
        "start=-inf",
        "start=0&end=inf",
        "start=0&end=nan",
        "start=0&end=1e999",
    ):
        response = api.get(f"/v1/encounters/{encounter}/audio?{query}", headers=DR_A)
        assert response.status_code == 422, (query, response.status_code, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert api.get(f"/v1/encounters/{encounter}/audio?start=1&end=2", headers=DR_A).status_code == 200


def test_a_display_name_with_a_control_character_is_refused(capsys, tmp_path):
    from scribe.cli import run

    code = run(["users", "add", "dr-x", "--no-password", "--display-name", "Dr\u202e X", "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 3 and "--display-name: contains U+202E" in err and "Traceback" not in err
    assert run(["users", "add", "dr-x", "--no-password", "--display-name", "Dr. X", "--data-dir", str(tmp_path)]) == 0
