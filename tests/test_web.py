"""The web app's server side: page shells, their security headers, static files, and the API the pages use
(encounter context, patient search, note engines, the same-origin rule for browsers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from scribe.api.app import create_app
from scribe.api.headers import PAGE_CSP
from scribe.auth.users import save_user
from scribe.config import Settings
from tests.accounts import KEY
from tests.conftest import SAMPLES
from tests.helpers.clinic import post_records

PASSWORD = "correct horse battery"
PAGES = ("/", "/encounters/new", "/encounters/enc-1", "/notes/n-1")
# The automation hooks sites' QA and our browser tests rely on, page by page (stable from now on).
TESTIDS = {
    "/": {"new-encounter", "encounters", "search", "sign-out"},
    "/encounters/new": {
        "new-encounter",
        "patient-id",
        "record",
        "stop",
        "transcript",
        "draft-note",
        "records-file",
        "image-file",
        "audio-file",
        "connection-state",
        "level",
        "warnings",
        "context",
    },
    "/notes/n-1": {"note", "sign", "confirm-sign", "note-status", "evidence-audio", "fhir-json", "versions"},
}


def make_client(tmp_path: Path, **settings) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path, secret_key=KEY, **settings), load_asr=False)
    return TestClient(app)


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path) as test_client:
        save_user(test_client.app.state.database, "dr-a", PASSWORD, display_name="Dr. A")
        save_user(test_client.app.state.database, "dr-b", PASSWORD)
        yield test_client


def sign_in(client: TestClient, username: str = "dr-a") -> dict[str, str]:
    response = client.post("/v1/session", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


def check_page_rules(client: TestClient, response) -> None:
    """CSP without inline script or style, nosniff, no-store, and every asset served by scribe itself."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert "default-src 'self'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP and "unsafe" not in PAGE_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle=", html) and "<style" not in html, "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for url in assets_of(html):
        assert url.startswith("/"), f"{url} is not on scribe's own origin"
        if url.startswith("/static/"):
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff"
            kind = asset.headers["content-type"]
            assert kind.startswith(
                {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[url.rsplit(".", 1)[1]]
            )


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_every_page_is_the_sign_in_page(client, path):
    response = client.get(path)
    check_page_rules(client, response)
    for testid in ("username", "password", "sign-in"):
        assert f'data-testid="{testid}"' in response.text
    assert "csrf-token" not in response.text


@pytest.mark.parametrize("path", PAGES)
def test_signed_in_pages_carry_their_hooks_and_no_patient_data(client, path):
    sign_in(client)
    response = client.get(path)
    check_page_rules(client, response)
    html = response.text
    for testid in TESTIDS.get(path, TESTIDS["/encounters/new"] if path.startswith("/encounters") else set()):
        assert len(re.findall(f'data-testid="{testid}"', html)) == 1, testid
    assert 'data-testid="username"' not in html  # the sign-in-again dialog has hooks of its own
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert csrf and client.get("/v1/session").json()["csrf_token"] == csrf.group(1)


def test_a_bad_id_in_a_page_address_is_escaped_and_its_api_answer_is_404(client):
    sign_in(client)
    page = client.get("/encounters/%3Cb%20onclick=%22x%22%3E")
    assert page.status_code == 200 and "<b onclick" not in page.text and "&lt;b onclick=&#34;x&#34;&gt;" in page.text
    assert client.get("/v1/encounters/%3Cscript%3E").status_code == 404
    assert client.get("/v1/notes/" + "x" * 65).status_code == 404


def test_every_module_the_pages_import_is_served(client):
    """Follow the ES module graph from each page's script: every import resolves to a served file."""
    seen, pending = (
        set(),
        ["/static/web/signin.js", "/static/web/encounters.js", "/static/web/encounter.js", "/static/web/note.js"],
    )
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "no-cache"
        for target in re.findall(r'^import .* from "([^"]+)";', response.text, flags=re.M):
            pending.append(
                target if target.startswith("/") else url.rsplit("/", 1)[0] + "/" + target.removeprefix("./")
            )
        for target in re.findall(r'addModule\(|workletUrl = "([^"]+)"', response.text):
            if target:
                pending.append(target)
    assert "/static/streaming/recorder.js" in seen and "/static/streaming/capture-worklet.js" in seen


def test_api_answers_are_never_cached_and_never_sniffed(client):
    headers = sign_in(client)
    for response in (
        client.get("/v1/encounters"),
        client.get("/healthz"),
        client.get("/v1/notes/nope"),
        client.post("/v1/encounters", json={}, headers=headers),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_context_shows_what_the_records_and_images_say(client):
    headers = sign_in(client)
    encounter = client.post("/v1/encounters", json={"patient": {"id": "pt-1001"}}, headers=headers).json()["id"]
    empty = client.get(f"/v1/encounters/{encounter}/context").json()
    assert empty["records"] == [] and empty["medications"] == [] and empty["images"] == []
    bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
    patient = json.loads(bundle)["entry"][0]["resource"]["id"]
    client.patch(f"/v1/encounters/{encounter}", json={"patient": {"id": patient}}, headers=headers)
    assert post_records(client, encounter, bundle, headers).status_code == 201
    from tests.helpers.clinic import png

    assert (
        client.post(
            f"/v1/encounters/{encounter}/images",
            content=png(),
            headers={**headers, "Content-Type": "image/png", "X-Filename": "wound.png"},
        ).status_code
        == 201
    )
    context = client.get(f"/v1/encounters/{encounter}/context").json()
    assert context["records"] == ["records-1"]
    assert {m["name"] for m in context["medications"]} >= {"apixaban", "metoprolol", "amlodipine"}
    assert any("fibrillation" in p["name"].lower() for p in context["problems"])
    assert [a["substance"] for a in context["allergies"]] == ["Penicillin"]
    assert context["images"] == [
        {
            "id": "image-1",
            "label": "wound.png",
            "format": "png",
            "modality": None,
            "body_part": None,
            "study_date": None,
        }
    ]
    sign_in(client, "dr-b")
    assert client.get(f"/v1/encounters/{encounter}/context").status_code == 403


def test_encounters_are_found_by_part_of_the_patient_id_or_name(client):
    headers = sign_in(client)
    for patient, name in (("pt-1001", "Jane Roe"), ("pt-2002", "John Doe"), ("pt_x", "50% Smith")):
        client.post(
            "/v1/encounters", json={"patient": {"id": patient.replace("_", "-"), "name": name}}, headers=headers
        )

    def found(text: str) -> set[str]:
        page = client.get("/v1/encounters", params={"q": text}).json()
        return {e["patient"]["id"] for e in page["encounters"]}

    assert found("1001") == {"pt-1001"} and found("doe") == {"pt-2002"} and found("ROE") == {"pt-1001"}
    assert found("50%") == {"pt-x"} and found("%") == {"pt-x"} and found("_") == set()
    assert found("pt-") == {"pt-1001", "pt-2002", "pt-x"}
    assert client.get("/v1/encounters", params={"q": "x" * 101}).status_code == 422


def test_note_engines_lists_what_is_configured(tmp_path):
    with make_client(tmp_path / "a") as plain:
        save_user(plain.app.state.database, "dr-a", PASSWORD)
        sign_in(plain)
        assert plain.get("/v1/note-engines").json() == {"default": "extractive", "engines": ["extractive"]}
    with make_client(tmp_path / "b", llm_base_url="http://127.0.0.1:9/v1", llm_model="m") as configured:
        save_user(configured.app.state.database, "dr-a", PASSWORD)
        sign_in(configured)
        assert configured.get("/v1/note-engines").json() == {"default": "openai", "engines": ["extractive", "openai"]}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(None, True), ("http://testserver", True), ("https://evil.example", False), ("http://testserver:81", False)],
)
def test_a_browser_stream_must_come_from_scribes_own_pages(client, origin, allowed):
    headers = sign_in(client)
    ticket = client.post("/v1/stream-tickets", json={"encounter_id": "enc-o"}, headers=headers).json()["ticket"]
    with client.websocket_connect(
        f"/v1/encounters/enc-o/stream?ticket={ticket}", headers={"Origin": origin} if origin else {}
    ) as socket:
        first = socket.receive_json()
    # the ASR engine is not loaded in this app: an accepted credential gets `server_busy`, a refused one `unauthorized`
    assert first["code"] == ("server_busy" if allowed else "unauthorized"), first
