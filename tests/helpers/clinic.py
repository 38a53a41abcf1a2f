"""The clinic over REST on the test app: the suite's clinicians and EHR clients, and encounters made ready for a
test (new, with a typed transcript, or with the sample's audio transcribed)."""

from __future__ import annotations

import io
import json

from fastapi.testclient import TestClient
from PIL import Image

from scribe.auth.smart import DRAFTS_SCOPE
from tests.accounts import bearer
from tests.conftest import SAMPLES

DR_A, DR_B = bearer("dr-a"), bearer("dr-b")
EHR = bearer("ehr-1", ("system/DocumentReference.rs",))
EHR_DRAFTS = bearer("ehr-drafts", ("system/DocumentReference.rs", DRAFTS_SCOPE))
SPOKEN = "[doctor] blood pressure is 130 over 80 .\n"


def new_encounter(api: TestClient, patient: str = "pt-1001", headers=DR_A, mode: str = "dictation") -> str:
    response = api.post(
        "/v1/encounters", json={"patient": {"id": patient, "name": "Jane Roe"}, "mode": mode}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def post_records(api: TestClient, encounter: str, bundle: bytes, headers=DR_A):
    """POST a FHIR bundle (JSON bytes) to the encounter's records; the response."""
    content_type = {"Content-Type": "application/fhir+json"}
    return api.post(f"/v1/encounters/{encounter}/records", content=bundle, headers={**headers, **content_type})


def post_audio(api: TestClient, encounter: str, audio: bytes, headers=DR_A):
    """POST a WAV recording to the encounter's audio (transcribed before the answer unless it takes long)."""
    return api.post(
        f"/v1/encounters/{encounter}/audio", content=audio, headers={**headers, "Content-Type": "audio/wav"}
    )


def spoken_encounter(api: TestClient, encounter: str | None = None, source: str = "upload") -> str:
    """`encounter` (else a new one) holding a short typed transcript, saved as if heard: a draft needs no ASR."""
    from scribe.encounters import save_transcript
    from scribe.notes.inputs import transcript_from_text
    from scribe.store.models import Encounter

    encounter = encounter or new_encounter(api)
    with api.app.state.database.session() as session, session.begin():
        save_transcript(session, session.get(Encounter, encounter), transcript_from_text(SPOKEN), source=source)
    return encounter


def transcribed_encounter(api: TestClient) -> str:
    """An encounter with the sample's records and its audio transcribed by the bundled Whisper (real weights)."""
    bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
    patient = json.loads(bundle)["entry"][0]["resource"]["id"]
    encounter = new_encounter(api, patient=patient)
    response = post_records(api, encounter, bundle)
    assert response.status_code == 201, response.text
    response = post_audio(api, encounter, (SAMPLES / "cardiology_followup.wav").read_bytes())
    assert response.status_code == 200, response.text
    assert "amlodipine" in response.json()["text"].lower()
    return encounter


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
