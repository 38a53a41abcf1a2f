"""The review side of the web app in a real Chromium: edits from two tabs, versions, sign with the keyboard,
amend and addendum; a session that ends mid-edit; every API refusal shown in the page; a tablet screen.

The encounters are made over REST first (an uploaded dictation, its records, a draft), so these tests
exercise the pages, not speech recognition; the recording path has its own tests.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scribe.auth.tokens import create_token
from scribe.wer import word_errors
from tests.accounts import KEY
from tests.browser import (
    DICTATION,
    GARBLED_WER,
    PATIENT,
    USERNAME,
    Service,
    Shots,
    chromium,
    offline_text,
    same_origin,
    service,
    sign_in,
)
from tests.conftest import SAMPLES
from tests.helpers.clinic import png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir: Path) -> Service:
    with service(tmp_path_factory.mktemp("review"), models_dir) as running:
        yield running


def statement(page, index: int = 0):
    return page.locator('[data-testid="note"] .statement').nth(index)


def edit(page, index: int, text: str) -> None:
    item = statement(page, index)
    item.get_by_role("button", name=re.compile("^Edit")).click()
    item.get_by_test_id("statement-editor").fill(text)
    item.get_by_test_id("save-statement").click()


def message(page) -> str:
    region = page.get_by_test_id("message")
    region.wait_for()
    return region.text_content() or ""


def test_two_tabs_versions_keyboard_sign_amend_and_addendum(served: Service):
    shots = Shots("review")
    _, note_id = served.drafted_note()
    with chromium(DICTATION) as browser:
        first = browser.signed_in_page(served.base, f"/notes/{note_id}")
        second = browser.new_page()
        second.goto(f"{served.base}/notes/{note_id}")
        for page in (first, second):
            statement(page).wait_for()
        original = statement(second, 1).locator(".text").text_content()

        edit(first, 0, "Atrial fibrillation, rate controlled.")
        statement(first, 0).filter(has_text="rate controlled").wait_for()

        # the second tab still shows version 1: its edit is refused, shown with the newer version, not lost
        edit(second, 1, "Palpitations resolved since the last visit.")
        conflict = second.get_by_test_id("edit-conflict")
        conflict.wait_for()
        assert "changed elsewhere" in (conflict.text_content() or "")
        assert "Palpitations resolved" in (second.get_by_test_id("my-edit").text_content() or "")
        statement(second, 0).filter(has_text="rate controlled").wait_for()  # the other tab's edit, now shown
        shots.take(second, "conflict")
        second.get_by_test_id("apply-my-edit").click()
        conflict.wait_for(state="hidden")
        texts = second.locator('[data-testid="note"] .statement .text').all_text_contents()
        assert (
            "Atrial fibrillation, rate controlled." in texts and "Palpitations resolved since the last visit." in texts
        )
        assert original not in texts

        # version history: 1 drafted, 2 and 3 the two edits
        second.get_by_test_id("versions").locator("summary").click()
        second.get_by_role("button", name="Version 1").click()
        assert original in (second.locator("#version-view").text_content() or "")
        second.get_by_role("button", name="Version 3").wait_for()

        # Alt+S signs; the edits cite words nobody said, so the page asks to confirm them first
        second.keyboard.press("Alt+s")
        second.get_by_test_id("confirm-sign").wait_for()
        second.get_by_test_id("confirm-sign").click()
        second.locator('[data-testid="note-status"].signed').wait_for()
        assert "signed" in (second.get_by_test_id("note-status").text_content() or "")
        assert second.get_by_test_id("sign").is_hidden()
        shots.take(second, "signed")

        # amend: a new draft that replaces the signed note once signed
        second.get_by_test_id("amend").click()
        second.get_by_test_id("amend-reason").fill("Dose corrected after review")
        second.get_by_role("button", name="Start amendment").click()
        second.wait_for_url(lambda url: not url.endswith(note_id))
        amendment = second.url.rsplit("/", 1)[1]
        second.get_by_text("Amendment of").wait_for()
        statement(second).wait_for()
        second.get_by_test_id("sign").click()
        second.get_by_test_id("confirm-sign").click()
        second.locator('[data-testid="note-status"].signed').wait_for()
        first.goto(f"{served.base}/notes/{note_id}")
        first.locator('[data-testid="note-status"].amended').wait_for()

        # addendum to the amendment: a new note carrying the text, signed like any other
        second.get_by_test_id("addendum").click()
        second.get_by_test_id("addendum-text").fill("Patient called: tolerating the new dose.")
        second.get_by_role("button", name="Add addendum", exact=True).last.click()
        second.wait_for_url(lambda url: not url.endswith(amendment))
        second.get_by_text("Patient called: tolerating the new dose.").first.wait_for()
        second.get_by_text("Addendum to").wait_for()
        shots.take(second, "addendum")
        offsite = same_origin(browser.requests, served.base)
    assert offsite == [], offsite


def test_a_session_that_ends_mid_edit_asks_to_sign_in_and_keeps_the_edit(served: Service):
    shots = Shots("session-expiry")
    _, note_id = served.drafted_note()
    with chromium(DICTATION) as browser:
        page = browser.signed_in_page(served.base, f"/notes/{note_id}")
        item = statement(page)
        item.get_by_role("button", name=re.compile("^Edit")).click()
        item.get_by_test_id("statement-editor").fill("Typed before the session ended.")
        with sqlite3.connect(served.data_dir / "scribe.db") as database:  # the session ends (as on expiry)
            database.execute("DELETE FROM web_sessions")
        item.get_by_test_id("save-statement").click()
        page.get_by_test_id("reauth-password").wait_for()
        shots.take(page, "sign-in-again")
        page.get_by_test_id("reauth-password").fill("correct horse battery staple")
        page.get_by_test_id("reauth-sign-in").click()
        statement(page).filter(has_text="Typed before the session ended.").wait_for()
        assert page.get_by_test_id("reauth-password").is_hidden()

        # signing out leaves nothing of a patient in this browser's storage
        page.evaluate("localStorage.setItem('left-behind', 'pt-1001'); sessionStorage.setItem('x', 'y')")
        page.get_by_test_id("sign-out").click()
        page.get_by_test_id("sign-in").wait_for()
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        page.goto(f"{served.base}/notes/{note_id}")
        page.get_by_test_id("sign-in").wait_for()  # every page is the sign-in page again


def test_refusals_are_clear_messages_in_the_page(served: Service, tmp_path: Path):
    shots = Shots("refusals")
    encounter, note_id = served.drafted_note(patient=None)
    with served.rest("dr-other") as other:
        foreign = other.post("/v1/encounters", json={"patient": {"id": "pt-9"}}).json()["id"]
    with chromium(DICTATION) as browser:
        page = browser.signed_in_page(served.base)

        page.goto(f"{served.base}/encounters/{foreign}")  # 403
        assert "Not allowed" in message(page) and "another clinician" in message(page)
        page.goto(f"{served.base}/notes/no-such-note")  # 404
        assert "Not found" in message(page)

        # 409: a note whose encounter names no patient is not signed; naming it here makes it signable
        page.goto(f"{served.base}/notes/{note_id}")
        statement(page).wait_for()
        page.get_by_test_id("note-patient-id").wait_for()
        page.get_by_test_id("sign").click()
        if page.get_by_test_id("confirm-sign").is_visible():
            page.get_by_test_id("confirm-sign").click()
        assert "Not possible right now" in message(page) and "names no patient" in message(page)
        shots.take(page, "409")
        page.get_by_test_id("note-patient-id").fill(PATIENT)
        page.get_by_role("button", name="Save patient").click()
        page.get_by_test_id("note-patient-id").wait_for(state="hidden")

        # 413: an edit larger than the server takes
        item = statement(page)
        item.get_by_role("button", name=re.compile("^Edit")).click()
        item.get_by_test_id("statement-editor").fill("x" * (3 * 1024 * 1024))
        item.get_by_test_id("save-statement").click()
        assert "Too large" in message(page)
        shots.take(page, "413")

        # 422: a file that is not audio, dropped as the recording; then a real one, and an image
        page.goto(f"{served.base}/encounters/{encounter}")
        page.get_by_test_id("draft-note").wait_for()
        text = tmp_path / "notes.txt"
        text.write_text("not audio at all")
        page.get_by_test_id("audio-file").set_input_files(str(text))
        assert "Could not be processed" in message(page)
        shots.take(page, "422")
        page.get_by_test_id("audio-file").set_input_files(str(SAMPLES / "diabetes_visit.wav"))
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=120_000)
        heard = page.get_by_test_id("transcript").text_content() or ""
        # the dropped file was transcribed (bundled Whisper base, no records: 0.61 offline on this file)
        assert word_errors((SAMPLES / "diabetes_visit.txt").read_text(), heard).wer < 0.7, heard
        image = tmp_path / "wound.png"
        image.write_bytes(png())
        page.get_by_test_id("image-file").set_input_files(str(image))
        page.get_by_test_id("context").get_by_text("image-1: wound.png").wait_for()
        offsite = same_origin(browser.requests, served.base)
    assert offsite == [], offsite


def test_tablet_width_labels_and_record_by_keyboard(served: Service):
    shots = Shots("tablet")
    _, note_id = served.drafted_note()
    with chromium(SAMPLES / "diabetes_visit.wav") as browser:
        page = browser.new_page()
        page.set_viewport_size({"width": 768, "height": 1024})
        sign_in(page, served.base)
        for path in ("/", "/encounters/new", f"/notes/{note_id}"):
            page.goto(served.base + path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, meter')]
                .filter((n) => n.offsetParent !== null && n.type !== 'hidden')
                .filter((n) => !(n.getAttribute('aria-label') || (n.labels && n.labels.length) || n.textContent.trim()))
                .map((n) => n.outerHTML.slice(0, 80))""")
            assert unnamed == [], (path, unnamed)
            shots.take(page, path.strip("/").replace("/", "-") or "encounters")

        # Alt+R records, Alt+P pauses (nothing is recorded meanwhile) and resumes, Alt+R again stops
        page.goto(served.base + "/encounters/new")
        page.get_by_test_id("patient-id").fill(PATIENT)
        started = time.monotonic()
        page.keyboard.press("Alt+r")
        page.locator('[data-testid="transcript"] .segment, [data-testid="transcript"] .partial').first.wait_for(
            timeout=30_000
        )
        page.keyboard.press("Alt+p")
        page.locator('[data-testid="connection-state"][data-state="paused"]').wait_for()
        assert page.get_by_test_id("pause").text_content() == "Resume"
        page.wait_for_timeout(3000)
        page.keyboard.press("Alt+p")
        page.locator('[data-testid="connection-state"][data-state="live"]').wait_for()
        page.wait_for_timeout(9000)
        page.keyboard.press("Alt+r")
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=60_000)
        recording_s = time.monotonic() - started
        encounter_id = page.url.rsplit("/", 1)[1]
        heard = page.get_by_test_id("transcript").text_content() or ""
        shots.take(page, "recorded-by-keyboard")
    stored, rate = served.stored_audio(encounter_id)
    assert len(stored) / rate < recording_s - 2.5  # the three paused seconds are not in the recording
    # recorded: the page shows what offline transcription hears in the stored audio (the pause cuts words wherever
    # it falls; both lose the same ones)
    offline = offline_text(stored, rate, served.models_dir)
    assert word_errors(offline, heard).wer < GARBLED_WER, (heard, offline)


def test_the_engine_choice_appears_when_several_are_configured(served: Service):
    """The page offers the engines the server lists (answered here by the test) and drafts with the chosen one."""
    encounter, _ = served.drafted_note()
    with chromium(DICTATION) as browser:
        page = browser.new_page()
        page.route(
            "**/v1/note-engines",
            lambda route: route.fulfill(json={"default": "openai", "engines": ["extractive", "openai"]}),
        )
        sign_in(page, served.base)
        page.goto(f"{served.base}/encounters/{encounter}")
        choice = page.get_by_test_id("engine")
        choice.wait_for()
        assert choice.input_value() == "openai"
        choice.select_option("extractive")
        with page.expect_request(lambda r: r.url.endswith(f"/v1/encounters/{encounter}/note")) as drafted:
            page.get_by_test_id("draft-note").click()
        assert drafted.value.post_data_json == {"engine": "extractive"}
        page.locator('[data-testid="note"] .statement').first.wait_for()


def test_the_servers_warnings_are_shown(served: Service, tmp_path: Path):
    """Too loud, then a muted microphone: the page says so, and the recording goes on."""
    speech, rate = soundfile.read(str(DICTATION), dtype="float32")
    wav = tmp_path / "loud-then-muted.wav"
    soundfile.write(str(wav), np.concatenate([np.clip(speech[: rate * 3] * 6, -1, 1), np.zeros(rate * 12)]), rate)
    with chromium(wav) as browser:
        page = browser.signed_in_page(served.base, "/encounters/new")
        page.get_by_test_id("record").click()
        warnings = page.get_by_test_id("warnings")
        warnings.locator('[data-code="clipping"]').wait_for(timeout=20_000)
        warnings.locator('[data-code="silence"]').wait_for(timeout=30_000)
        assert "too loud" in (warnings.text_content() or "") and "muted" in (warnings.text_content() or "")
        Shots("warnings").take(page, "warnings")
        page.get_by_test_id("stop").click()
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=60_000)


def test_recording_more_into_an_encounter_streamed_at_another_rate(served: Service):
    """The first part came from the Python client at 16 kHz; the page records the rest at that rate too."""
    import asyncio

    from scribe.audio import decode_audio
    from scribe.streaming.client import pcm16, stream_pcm

    token = create_token(KEY.encode(), USERNAME, ("user/*.*",), 600)
    url = served.base.replace("http", "ws") + "/v1/encounters/enc-two-parts/stream"
    asyncio.run(stream_pcm(url, pcm16(decode_audio(DICTATION)), token=token))
    second = SAMPLES / "diabetes_visit.wav"
    with chromium(second) as browser:
        page = browser.signed_in_page(served.base, "/encounters/enc-two-parts")
        page.locator('[data-testid="transcript"] .segment').first.wait_for()
        page.get_by_test_id("record").click()
        page.locator('[data-testid="connection-state"][data-state="live"]').wait_for(timeout=30_000)
        page.wait_for_timeout(soundfile.info(str(second)).duration * 1000 + 1500)
        page.get_by_test_id("stop").click()
        page.locator('[data-testid="connection-state"][data-state="done"]').wait_for(timeout=60_000)
        heard = page.get_by_test_id("transcript").text_content() or ""
    _, rate = served.stored_audio("enc-two-parts")
    assert rate == 16000
    both = " ".join(p.with_suffix(".txt").read_text() for p in (DICTATION, second))
    assert word_errors(both, heard).wer < 0.6, heard


def test_conflicts_show_both_values_and_unsure_words_are_underlined(served: Service):
    """A statement that contradicts the chart shows what was said against what the records hold, and is confirmed
    before signing; critical words heard with low confidence are underlined with their confidence."""
    from scribe.config import Settings
    from scribe.encounters import save_transcript
    from scribe.store import open_database
    from scribe.store.models import Encounter
    from scribe.transcript import Transcript
    from tests.test_record_conflicts import NAPROXEN, heard
    from tests.test_record_conflicts import PATIENT as CHART_PATIENT
    from tests.test_records import bundle

    segment = heard("I take naproxen 100 milligrams daily for my knee.", {"100": 0.31, "knee.": 0.2})
    with served.rest() as api:
        encounter = api.post("/v1/encounters", json={"patient": {"id": CHART_PATIENT["id"]}, "mode": "dictation"})
        encounter = encounter.json()["id"]
        records = api.post(
            f"/v1/encounters/{encounter}/records",
            headers={"Content-Type": "application/fhir+json"},
            json=bundle(CHART_PATIENT, NAPROXEN),
        )
        assert records.status_code == 201, records.text
        database = open_database(Settings(data_dir=served.data_dir, secret_key=KEY))
        try:
            with database.session() as session, session.begin():
                save_transcript(
                    session,
                    session.get(Encounter, encounter),
                    Transcript(segment.text, "en", "whisper", "test", segment.end, 0.0, [segment]),
                    source="upload",
                )
        finally:
            database.engine.dispose()
        note = api.post(f"/v1/encounters/{encounter}/note")
        assert note.status_code == 201, note.text
        note_id = note.json()["id"]
    with chromium(DICTATION) as browser:
        page = browser.signed_in_page(served.base, f"/notes/{note_id}")
        flagged = page.locator('[data-testid="note"] .statement.conflict[data-path="medications"]')
        flagged.wait_for()
        assert "Disagrees with the records" in (flagged.locator(".flag").text_content() or "")
        dose = flagged.locator('[data-testid="record-conflicts"] li[data-field="dose"]')
        assert dose.locator(".said").text_content() == "100 mg"
        assert dose.locator(".records").text_content() == "500 mg"
        assert "MedicationStatement/m1" in (dose.text_content() or "")
        unsure = flagged.locator(".unsure u.low-confidence")
        assert unsure.all_text_contents() == ["100"]  # "knee." is unsure but not critical
        assert "31% confidence" in (unsure.get_attribute("title") or "")
        underlined = page.locator('[data-testid="review-transcript"] u.low-confidence')
        underlined.first.wait_for()
        assert underlined.all_text_contents() == ["100"]
        assert "31% confidence" in (underlined.get_attribute("title") or "")
        flagged.locator("button.evidence").first.click()  # the cited words highlighted, the underline kept
        page.locator('[data-testid="review-transcript"] mark u.low-confidence').wait_for()

        page.get_by_test_id("sign").click()
        page.get_by_test_id("confirm-sign").wait_for()
        listed = page.locator("#confirm-list").text_content() or ""
        assert "said 100 mg, records 500 mg" in listed and "said daily, records twice daily" in listed
        page.get_by_test_id("confirm-sign").click()
        page.locator('[data-testid="note-status"].signed').wait_for()
        offsite = same_origin(browser.requests, served.base)
    assert offsite == [], offsite
