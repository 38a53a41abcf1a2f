"""Each page of the web app, feature by feature, in a real Chromium against one `scribe serve`: the encounter
list, a refused sign-in, the new-encounter form, records and images in the context panel, recording (the device's
own rate, the level meter, partials apart from finals, the server's backpressure warning), a dropped file, the SOAP
headings, evidence audio of exactly the cited words, and the 1280×800 layout. Encounters are made over REST
(tests/test_browser_review.py's helpers) unless the page makes them; only the recording tests record.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import soundfile

from tests.accounts import KEY
from tests.browser import (
    BUNDLE,
    PATIENT,
    USERNAME,
    Browser,
    Service,
    Shots,
    another_chromium,
    chromium,
    same_origin,
    service,
    wav_seconds,
)
from tests.conftest import SAMPLES

pytestmark = pytest.mark.slow
SPEECH = SAMPLES / "cardiology_followup.wav"
DROPPED = SAMPLES / "urology_asthma.wav"


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir: Path) -> Iterator[Service]:
    with service(tmp_path_factory.mktemp("pages"), models_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser(served: Service) -> Iterator[Browser]:
    """One Chromium for the tests that do not record (its microphone is never opened), signed in once."""
    with chromium(SPEECH) as shared:
        shared.signed_in_page(served.base).close()
        yield shared


@pytest.fixture(scope="module")
def paused_speech(tmp_path_factory) -> Path:
    """The cardiology dictation with a second's pause after its first sentence (1.88 to 2.2 s): an end of speech,
    so that sentence becomes final while the next is still a partial (the sample's own pauses are too short)."""
    audio, rate = soundfile.read(str(SPEECH), dtype="float32")
    cut = int(2.04 * rate)
    wav = tmp_path_factory.mktemp("microphone") / "paused.wav"
    soundfile.write(str(wav), np.concatenate([audio[:cut], np.zeros(rate, dtype=np.float32), audio[cut:]]), rate)
    return wav


@pytest.fixture(scope="module")
def drafted(served: Service) -> tuple[str, str]:
    """(encounter id, note id): the cardiology dictation uploaded with its records and drafted."""
    return served.drafted_note()


def expect():
    from playwright.sync_api import expect as playwright_expect  # imported when a browser runs, as chromium() does

    return playwright_expect


# True once the encounter list's rows are exactly the ids given (sorted).
SHOWN_ROWS = """(ids) => JSON.stringify([...document.querySelectorAll('#encounter-rows tr')]
  .map((row) => row.dataset.encounterId).sort()) === JSON.stringify(ids)"""


def api_json(served: Service, path: str) -> dict:
    with served.rest() as api:
        response = api.get(path)
        assert response.status_code == 200, response.text
        return response.json()


# ------------------------------------------------------------------------------------------ encounter list


def test_the_encounter_list_shows_each_row_and_finds_by_part_of_the_patient_and_by_status(
    served: Service, browser: Browser, drafted: tuple[str, str]
):
    with served.rest() as api:
        named = api.post("/v1/encounters", json={"patient": {"id": "pt-list-7731", "name": "Ada Quill"}}).json()
        unnamed = api.post("/v1/encounters", json={"patient": {"id": "pt-list-8842"}, "mode": "dictation"}).json()
    page = browser.open(served.base, "/")
    rows = page.locator("#encounter-rows tr")
    assert page.locator("table.list thead th").all_text_contents() == ["Patient", "Status", "Mode", "Date"]

    # a row: the patient's name over their id, the status, the mode, the date as this browser writes it
    cells = page.locator(f'#encounter-rows tr[data-encounter-id="{named["id"]}"] td')
    expect()(cells).to_have_count(4)
    assert cells.nth(0).locator("a").text_content() == "Ada Quill"
    assert cells.nth(0).locator(".sub").text_content() == "pt-list-7731"
    assert cells.nth(1).locator(".status-badge").text_content() == named["status"] == "recording"
    assert cells.nth(2).text_content() == "encounter"
    date = cells.nth(3).locator("time")
    assert date.get_attribute("datetime") == named["created_at"]
    local = page.evaluate("(iso) => new Date(iso).toLocaleString()", named["created_at"])
    assert date.text_content() == local != named["created_at"]

    def search(text: str) -> None:
        page.get_by_test_id("search").fill(text)
        page.get_by_test_id("search").press("Enter")

    def shows(expected: set[str]) -> None:
        """Wait until the rows are exactly the encounters `expected` (each search's answer differs from the last)."""
        try:
            page.wait_for_function(SHOWN_ROWS, arg=sorted(expected), timeout=10_000)
        except Exception:
            shown = {row.get_attribute("data-encounter-id") for row in rows.all()}
            assert shown == expected
            raise

    search("QUILL")  # part of the name, in another case
    shows({named["id"]})
    search("list-88")  # part of the id
    shows({unnamed["id"]})
    search("pt-list")
    shows({named["id"], unnamed["id"]})
    search("nobody-by-this-name")
    shows(set())
    expect()(page.locator("#no-match")).to_be_visible()  # an empty search says so, not a bare table
    Shots("pages-list").take(page, "no-match")

    search("")
    page.get_by_test_id("status-filter").select_option("drafted")
    drafted_ids = {e["id"] for e in api_json(served, "/v1/encounters?status=drafted")["encounters"]}
    assert drafted[0] in drafted_ids
    shows(drafted_ids)
    assert set(rows.locator(".status-badge").all_text_contents()) == {"drafted"}
    search("pt-list")  # both at once: this patient's encounters with that status
    shows(set())
    page.get_by_test_id("status-filter").select_option("recording")
    shows({named["id"], unnamed["id"]})
    expect()(page.locator("#no-match")).to_be_hidden()


# ------------------------------------------------------------------------------------------ sign-in


def test_a_wrong_password_is_said_in_the_sign_in_page(served: Service, browser: Browser):
    context = browser.browser.new_context(viewport={"width": 1280, "height": 800})  # signed out
    try:
        page = context.new_page()
        page.goto(served.base + "/")
        page.get_by_test_id("username").fill(USERNAME)
        page.get_by_test_id("password").fill("not the password")
        with page.expect_response(lambda r: r.url.endswith("/v1/session")) as answer:
            page.get_by_test_id("sign-in").click()
        assert answer.value.status == 401
        message = page.get_by_test_id("message")
        expect()(message).to_be_visible()
        assert "wrong username or password" in (message.text_content() or "").lower()
        assert message.get_attribute("role") == "alert"
        # still the sign-in form, the username kept, the password selected to type again
        assert page.get_by_test_id("sign-in").is_visible() and page.get_by_test_id("username").input_value() == USERNAME
        assert page.evaluate("document.activeElement.dataset.testid") == "password"
        Shots("pages-sign-in").take(page, "wrong-password")
        page.get_by_test_id("password").fill("")
        page.get_by_test_id("sign-in").click()
        expect()(message).to_have_text("Enter your username and password.")
    finally:
        context.close()


# ------------------------------------------------------------------------------------------ new encounter


def test_the_new_encounter_form_creates_the_encounter_with_its_name_and_mode(
    served: Service, browser: Browser, tmp_path: Path
):
    from tests.helpers.clinic import png

    page = browser.open(served.base, "/encounters/new")
    page.get_by_test_id("patient-id").fill("pt-form-5521")
    page.get_by_test_id("patient-name").fill("Grace Hopper-Quinn")
    page.get_by_test_id("mode").select_option("dictation")  # not the default (a conversation)
    image = tmp_path / "rash.png"
    image.write_bytes(png())
    page.get_by_test_id("image-file").set_input_files(str(image))  # the first action makes the encounter
    page.wait_for_url(re.compile(r"/encounters/[0-9a-f]{32}$"))
    encounter = api_json(served, f"/v1/encounters/{page.url.rsplit('/', 1)[1]}")
    assert encounter["patient"] == {"id": "pt-form-5521", "name": "Grace Hopper-Quinn"}
    assert encounter["mode"] == "dictation"
    assert page.get_by_test_id("mode").is_disabled() and page.get_by_test_id("mode").input_value() == "dictation"


def context_group(page, title: str):
    """The context panel's list under the heading `title` (Medications, Problems, Allergies, Images)."""
    heading = page.get_by_role("heading", name=title, exact=True)
    return page.get_by_test_id("context").locator(".context-group").filter(has=heading).locator("li")


def test_records_attached_in_the_page_show_their_problems_and_allergies(served: Service, browser: Browser):
    with served.rest() as api:
        encounter = api.post("/v1/encounters", json={"patient": {"id": PATIENT}}).json()["id"]
    page = browser.open(served.base, f"/encounters/{encounter}")
    with page.expect_response(lambda r: r.url.endswith(f"/{encounter}/records")) as attached:
        page.get_by_test_id("records-file").set_input_files(str(BUNDLE))
    assert attached.value.status == 201, attached.value.text()
    context = api_json(served, f"/v1/encounters/{encounter}/context")
    assert context["problems"] and context["allergies"], context  # the sample Bundle has both
    problems = [p["name"] + (f" ({p['code']})" if p["code"] else "") for p in context["problems"]]
    allergies = [a["substance"] + (f": {a['reaction']}" if a["reaction"] else "") for a in context["allergies"]]
    expect()(context_group(page, "Problems")).to_have_text(problems)
    expect()(context_group(page, "Allergies")).to_have_text(allergies)
    expect()(context_group(page, "Medications")).to_have_count(len(context["medications"]))
    Shots("pages-context").take(page, "records")


def test_jpeg_and_dicom_images_attached_in_the_page_show_their_labels(
    served: Service, browser: Browser, tmp_path: Path
):
    from PIL import Image

    from tests.test_attachments import dicom

    jpeg = tmp_path / "wound.jpg"
    Image.new("RGB", (40, 30), (200, 120, 90)).save(jpeg, format="JPEG")
    scan = dicom(tmp_path).rename(tmp_path / "chest.dcm")  # CR, CHEST, study date 20240302
    with served.rest() as api:
        encounter = api.post("/v1/encounters", json={"patient": {"id": PATIENT}}).json()["id"]
    page = browser.open(served.base, f"/encounters/{encounter}")
    page.get_by_test_id("context").get_by_text("No records or images attached yet.").wait_for()
    page.get_by_test_id("image-file").set_input_files([str(jpeg), str(scan)])
    expect()(context_group(page, "Images")).to_have_text(["image-1: wound.jpg", "image-2: CR chest image (2024-03-02)"])
    images = api_json(served, f"/v1/encounters/{encounter}/context")["images"]
    assert [i["format"] for i in images] == ["jpeg", "dicom"], images
    Shots("pages-context").take(page, "images")


# ------------------------------------------------------------------------------------------ recording

# Notes in the page, from before its first recording: every partial and final as they come and go (with how each
# is drawn), and the level meter's highest value.
WATCH_RECORDING = """() => {
  const seen = window.__recording = {partials: [], finals: [], level: 0};
  const box = document.querySelector('[data-testid="transcript"]');
  const look = (node) => { const s = getComputedStyle(node); return [node.className, s.fontStyle, s.color]; };
  new MutationObserver(() => {
    const partial = box.querySelector('.partial');
    if (partial) seen.partials.push({text: partial.textContent, look: look(partial),
                                     last: box.lastElementChild === partial, finals: seen.finals.length});
    const finals = box.querySelectorAll('.segment');
    for (const final of [...finals].slice(seen.finals.length)) {
      seen.finals.push({text: final.textContent, look: look(final), partialLeft: partial !== null});
    }
  }).observe(box, {subtree: true, childList: true, characterData: true});
  setInterval(() => { seen.level = Math.max(seen.level, document.getElementById('level').value); }, 40);
}"""


def test_recording_keeps_the_devices_rate_moves_the_level_and_shows_partials_apart(
    served: Service, browser: Browser, paused_speech: Path
):
    """The page records at its AudioContext's own rate (no resampling to 16 kHz in the browser); the level meter
    follows the speech; a partial is drawn unlike a final, after the finals, and gives way to each final."""
    with another_chromium(browser, paused_speech) as recording:
        page = recording.signed_in_page(served.base, "/encounters/new")
        native = page.evaluate(
            "async () => { const c = new AudioContext(); const r = c.sampleRate; await c.close(); return r; }"
        )
        page.get_by_test_id("mode").select_option("encounter")
        page.evaluate(WATCH_RECORDING)
        page.get_by_test_id("record").click()
        finals_then_partial = "() => window.__recording.partials.some((p) => p.finals > 0)"
        page.wait_for_function(finals_then_partial, timeout=60_000)  # a final, then the next sentence as a partial
        Shots("pages-recording").take(page, "partials-and-finals")
        page.get_by_test_id("stop").click()
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=60_000)
        seen = page.evaluate("window.__recording")
        level_after = page.evaluate("document.getElementById('level').value")
        left = page.locator('[data-testid="transcript"] .partial').count()
        encounter_id = page.url.rsplit("/", 1)[1]
    encounter = api_json(served, f"/v1/encounters/{encounter_id}")
    assert encounter["mode"] == "encounter"

    # the device's rate (Chromium's here: 44.1 or 48 kHz); a page that forced 16 kHz would store 16000
    assert native != 16000, native
    assert encounter["stream_format"] == {"sample_rate": native, "encoding": "pcm_s16le", "channels": 1}
    assert served.stored_audio(encounter_id)[1] == native

    # the level meter moved with the speech, and rests at zero once stopped
    assert seen["level"] > 0.05, seen["level"]
    assert level_after == 0

    # partials: drawn apart (their own class, italic and grey), always after the finals, gone when a final comes
    partials, finals = seen["partials"], seen["finals"]
    assert partials and finals, seen
    assert partials[0]["finals"] == 0  # words showed as a partial before the first final...
    assert any(p["finals"] > 0 for p in partials)  # ...and after it, the next words (drawn below it: `last`)
    assert {tuple(p["look"]) for p in partials} == {("partial", "italic", partials[0]["look"][2])}
    assert all(f["look"][0] == "segment" and f["look"][1] == "normal" for f in finals), finals
    assert partials[0]["look"][2] != finals[0]["look"][2]  # another colour
    assert all(p["last"] for p in partials), partials
    assert not any(f["partialLeft"] for f in finals), finals  # each final replaced the partial
    assert left == 0


def test_the_servers_backpressure_warning_is_shown(browser: Browser, tmp_path: Path, models_dir: Path, monkeypatch):
    """Recognition behind the audio: the server says `backpressure` (when more than SCRIBE_MAX_STREAM_BACKLOG_SECONDS
    of audio waits for ASR); the page shows it and the recording goes on. The limit is a second on this server, so
    that ordinary speech passes it."""
    monkeypatch.setenv("SCRIBE_MAX_STREAM_BACKLOG_SECONDS", "1")
    with service(tmp_path, models_dir) as lagging, another_chromium(browser, SPEECH) as recording:
        page = recording.signed_in_page(lagging.base, "/encounters/new")
        page.get_by_test_id("record").click()
        warning = page.get_by_test_id("warnings").locator('[data-code="backpressure"]')
        warning.wait_for(timeout=30_000)
        assert "Recognition is behind the audio" in (warning.text_content() or "")
        Shots("pages-backpressure").take(page, "warning")
        # it goes on: the first final comes once the 14 s dictation has ended and recognition has caught up
        page.locator('[data-testid="transcript"] .segment').first.wait_for(timeout=90_000)
        page.get_by_test_id("stop").click()
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=60_000)


# ------------------------------------------------------------------------------------------ a dropped file

# A DataTransfer holding one file, as the browser makes for a file dragged from the desktop.
DATA_TRANSFER = """([name, type, base64]) => {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type}));
  return transfer;
}"""


def test_a_recording_dropped_on_the_page_is_uploaded_and_its_transcript_shown(served: Service, browser: Browser):
    import base64

    page = browser.open(served.base, "/encounters/new")
    transfer = page.evaluate_handle(
        DATA_TRANSFER, [DROPPED.name, "audio/wav", base64.b64encode(DROPPED.read_bytes()).decode()]
    )
    zone = page.get_by_test_id("dropzone")
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    expect()(zone).to_have_class(re.compile(r"\bover\b"))  # the zone shows it takes the file
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/audio"), timeout=60_000
    ) as sent:
        zone.dispatch_event("drop", {"dataTransfer": transfer})
    assert sent.value.status == 200, sent.value.text()
    assert sent.value.request.headers["content-type"] == "audio/wav"
    page.locator('[data-testid="connection-state"][data-state="done"]').wait_for()
    expect()(zone).not_to_have_class(re.compile(r"\bover\b"))
    encounter_id = page.url.rsplit("/", 1)[1]
    stored = api_json(served, f"/v1/encounters/{encounter_id}/transcript")
    shown = page.locator('[data-testid="transcript"] .segment .text').all_text_contents()
    assert shown and shown == [segment["text"].strip() for segment in stored["segments"]]
    assert abs(stored["duration_s"] - wav_seconds(DROPPED)) < 0.1  # the whole file went up
    Shots("pages-drop").take(page, "dropped")


# ------------------------------------------------------------------------------------------ note review


def test_the_note_shows_the_soap_headings_even_for_an_empty_section(
    served: Service, browser: Browser, drafted: tuple[str, str]
):
    note = api_json(served, f"/v1/notes/{drafted[1]}")["note"]
    assert not any(note["subjective"].values())  # this dictation says nothing a patient reported
    page = browser.open(served.base, f"/notes/{drafted[1]}")
    page.locator('[data-testid="note"] .statement').first.wait_for()
    headings = page.locator('[data-testid="note"] h2').all_text_contents()
    assert headings[:4] == ["Subjective", "Objective", "Assessment", "Plan"], headings
    subjective = page.locator('[data-testid="note"] h2:text-is("Subjective") + p.empty-section')
    assert subjective.text_content() == "None."


def test_an_evidence_click_plays_the_audio_of_exactly_the_cited_words(served: Service, browser: Browser):
    """One segment of three sentences with uneven word times: a statement cites one sentence, and the audio the
    page asks for spans that sentence's words (a small pad each side), not the whole segment."""
    from scribe.config import Settings
    from scribe.encounters import save_transcript
    from scribe.store import open_database
    from scribe.store.models import Encounter
    from scribe.transcript import Segment, Transcript, Word

    text = "Atrial fibrillation follow-up. Blood pressure 148 over 92. Increase amlodipine to 10 milligrams."
    words, clock = [], 0.4
    for index, token in enumerate(text.split()):
        length = 0.25 + 0.1 * (index % 4)
        words.append(Word(f" {token}", round(clock, 2), round(clock + length, 2), 0.95))
        clock += length + (0.6 if token.endswith(".") else 0.05)
    segment = Segment(0, 0.0, round(clock, 2), text, None, words)
    with served.rest() as api:
        encounter = api.post("/v1/encounters", json={"patient": {"id": PATIENT}, "mode": "dictation"}).json()["id"]
        database = open_database(Settings(data_dir=served.data_dir, secret_key=KEY))
        try:
            with database.session() as session, session.begin():
                transcript = Transcript(text, "en", "whisper", "test", segment.end, 0.0, [segment])
                row = session.get(Encounter, encounter)
                assert row is not None
                save_transcript(session, row, transcript, source="upload")
        finally:
            database.engine.dispose()
        drafted = api.post(f"/v1/encounters/{encounter}/note")
        assert drafted.status_code == 201, drafted.text
        note_id = drafted.json()["id"]
        note = api.get(f"/v1/notes/{note_id}").json()["note"]
        spoken = api.get(f"/v1/encounters/{encounter}/transcript").json()["segments"][0]

    # a statement whose first evidence is one sentence of the segment, not all of it
    cited = [
        (path, index, statement["evidence"][0])
        for path, statements in (("objective.vitals", note["objective"]["vitals"]), ("plan", note["plan"]))
        for index, statement in enumerate(statements)
        if "segment_id" in statement["evidence"][0]
        and statement["evidence"][0]["end_char"] - statement["evidence"][0]["start_char"] < len(text) - 5
    ]
    assert cited, note
    path, index, evidence = cited[0]
    first, last = word_span(spoken, evidence["start_char"], evidence["end_char"])
    assert last - first < segment.end - 3  # fewer words than the segment holds

    page = browser.open(served.base, f"/notes/{note_id}")
    button = page.locator(f'[data-testid="note"] .statement[data-path="{path}"][data-index="{index}"] button.evidence')
    page.locator('[data-testid="review-transcript"] .segment').first.wait_for()
    with page.expect_request(lambda r: f"/v1/encounters/{encounter}/audio?" in r.url) as asked:
        button.first.click()
    query = parse_qs(urlsplit(asked.value.url).query)
    start, end = float(query["start"][0]), float(query["end"][0])
    assert first - 0.2 <= start <= first and last <= end <= last + 0.2, (start, end, first, last)
    marked = page.locator('[data-testid="review-transcript"] mark').text_content() or ""
    assert marked.strip() == text[evidence["start_char"] : evidence["end_char"]].strip()


def word_span(segment: dict, start_char: int, end_char: int) -> tuple[float, float]:
    """Seconds from the first to the last word of the segment whose characters overlap start_char..end_char."""
    position, times = 0, []
    for word in segment["words"]:
        found = segment["text"].index(word["word"].strip(), position)
        position = found + len(word["word"].strip())
        if position > start_char and found < end_char:
            times.append((word["start"], word["end"]))
    assert times, (segment, start_char, end_char)
    return times[0][0], times[-1][1]


# ------------------------------------------------------------------------------------------ layout


def test_at_1280_by_800_nothing_overflows_and_the_main_controls_are_on_screen(
    served: Service, browser: Browser, drafted: tuple[str, str]
):
    encounter, note_id = drafted
    page = browser.open(served.base, f"/encounters/{encounter}")
    assert page.viewport_size == {"width": 1280, "height": 800}
    page.get_by_test_id("context").get_by_text("Problems").wait_for()  # the records' lists drawn: the page is long
    expect()(page.get_by_test_id("draft-note")).to_be_enabled()
    shots = Shots("pages-1280")
    shots.take(page, "encounter")
    on_screen(page, "record", "draft-note")
    page.goto(f"{served.base}/notes/{note_id}")
    page.locator('[data-testid="review-transcript"] .segment').first.wait_for()
    assert page.evaluate("document.documentElement.scrollHeight") > 800  # a note longer than the screen
    shots.take(page, "note")
    on_screen(page, "sign")
    offsite = same_origin(browser.requests, served.base)
    assert offsite == [], offsite


def on_screen(page, *test_ids: str) -> None:
    """No horizontal scrolling, and each control wholly inside the 1280×800 viewport without scrolling."""
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.scrollY") == 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url
    for test_id in test_ids:
        box = page.get_by_test_id(test_id).bounding_box()
        inside = box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1280
        assert inside and box["y"] + box["height"] <= 800, (test_id, box)
