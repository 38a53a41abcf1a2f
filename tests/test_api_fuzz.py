"""Property-based fuzzing of every route in `/openapi.json` (Schemathesis over Hypothesis).

Whatever a client sends, the answer is never a 5xx, and its status, media type and body are ones the
schema declares: the schema is what an integrator generates a client from, so it must be true. Each
operation is tried as generated (ids that exist nowhere) and against a real encounter and its draft
note, so the routes' own logic is reached, not only their 404s. Derandomised: CI runs the same inputs
each time; set SCRIBE_FUZZ_EXAMPLES (and SCRIBE_FUZZ_SEED) to search further by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scribe.api.app import create_app
from scribe.auth.tokens import Principal
from scribe.config import Settings
from scribe.encounters import create_encounter, save_transcript
from scribe.notes.lifecycle import generate_note
from scribe.transcript import Segment, Transcript, Word
from tests.accounts import KEY, enrol, token

CLINICIAN = token("dr-fuzz")
pytestmark = pytest.mark.slow  # long fuzz: every operation, and an audio upload loads the bundled Whisper
EXAMPLES = int(os.environ.get("SCRIBE_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _dictation() -> Transcript:
    text = "Blood pressure 148 over 92. Continue amlodipine 5 milligrams daily."
    words = [Word(w, i * 0.4, i * 0.4 + 0.35, 0.9) for i, w in enumerate(text.split())]
    return Transcript(
        text=text,
        language="en",
        engine="whisper",
        model="test",
        duration_s=6.0,
        processing_s=0.5,
        segments=[Segment(0, 0.0, 6.0, text, None, words)],
    )


# Raw bodies: random bytes, and bytes that start like the real thing, so the decoders' error paths are reached.
_WAV_HEAD = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00"
_PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
for _media, _head in [
    (m, _WAV_HEAD) for m in ("audio/wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/webm", "audio/mp4")
] + [("application/dicom", b"\x00" * 128 + b"DICM")]:
    schemathesis.openapi.media_type(
        _media, st.binary(max_size=4096) | st.binary(max_size=512).map(lambda tail, head=_head: head + tail)
    )
schemathesis.openapi.media_type("image/png", st.binary(max_size=512).map(lambda tail: _PNG_HEAD + tail))

# The schema is read at collection time, so the app is made then; its data directory appears when it starts.
DATA_DIR = Path(tempfile.gettempdir()) / f"scribe-fuzz-{os.getpid()}"
APP = create_app(Settings(data_dir=DATA_DIR, secret_key=KEY), load_asr=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def served():
    """The app running, with a clinician, one encounter holding a transcript and a drafted note."""
    try:
        with TestClient(APP):
            enrol(APP.state.database, CLINICIAN)
            with APP.state.database.session() as session, session.begin():
                encounter = create_encounter(
                    session,
                    Principal("dr-fuzz", ("user/*.*",), 0),
                    patient_id="pt-fuzz",
                    patient_name="Fuzz Patient",
                    mode="dictation",
                    encounter_id="enc-fuzz",
                )
                save_transcript(session, encounter, _dictation(), source="upload")
                note = generate_note(session, APP.state.settings, encounter).note.id
            yield APP, {"encounter": "enc-fuzz", "note": note}
    finally:
        shutil.rmtree(DATA_DIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="SCRIBE_FUZZ_SEED" not in os.environ,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_5xx_or_off_its_schema(case, served):
    _, ids = served
    headers = {"Authorization": f"Bearer {CLINICIAN}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
    if case.path_parameters and "id" in case.path_parameters:  # the same input against things that exist
        case.path_parameters["id"] = ids["note"] if case.path.startswith(("/v1/notes", "/fhir/")) else ids["encounter"]
        case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_schema_describes_every_route_and_every_answer(served):
    """No route without a documented body where it reads one, and no error answer but an OperationOutcome."""
    app, _ = served
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's 422 shape: scribe never sends it
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status[0] in "45" and path != "/auth/token":
                    assert list(answer["content"]) == ["application/fhir+json"], (method, path, status)
            if (
                method in ("post", "put", "patch")
                and path not in ("/v1/encounters/{id}/note",)
                and not path.endswith(("/sign",))
            ):
                assert operation.get("requestBody", {}).get("content"), (method, path)


def test_a_fuzzing_finding_stays_fixed(served):
    """What the first fuzzing run found: an offset past what the database takes was a 500 (OverflowError)."""
    app, _ = served
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {CLINICIAN}"}
    assert client.get("/v1/encounters", params={"_offset": 2**63}, headers=headers).status_code == 422
    assert (
        client.get(
            "/fhir/DocumentReference", params={"patient": "pt-fuzz", "_offset": 2**63}, headers=headers
        ).status_code
        == 400
    )
