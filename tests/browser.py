"""What the browser tests share: a real `scribe serve` with a clinician and an EHR client, and Debian's
Chromium driven by Playwright with a WAV file as its microphone.

Chromium plays the WAV into `getUserMedia` once (`%noloop`), then silence. Every page is watched:
each request and websocket is recorded (the tests assert they stay on scribe's origin), and an init
script notes when recognised text first appears in the transcript and every connection state shown.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import soxr

from scribe.auth.smart import register_client
from scribe.auth.tokens import create_token
from scribe.auth.users import save_user
from scribe.config import Settings
from scribe.store import open_database
from tests.accounts import KEY, enrol
from tests.conftest import ARTIFACTS as TEST_ARTIFACTS
from tests.conftest import SAMPLES
from tests.helpers.server import free_port, start_server
from tests.test_auth_keys import SigningKey, ec_key, jwks

CHROMIUM = Path("/usr/bin/chromium")
# the sample the browser tests dictate, and the records of its patient
DICTATION = SAMPLES / "cardiology_followup.wav"
BUNDLE = SAMPLES / "cardiology_followup.bundle.json"
PATIENT = json.loads(BUNDLE.read_text())["entry"][0]["resource"]["id"]
USERNAME, PASSWORD = "dr-web", "correct horse battery staple"
ARTIFACTS = TEST_ARTIFACTS / "browser"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Runs in every page before its own scripts (Playwright injects it; the page's CSP does not apply to it).
WATCH_PAGE = """
window.__scribe = {firstText: null, states: []};
new MutationObserver(() => {
  const transcript = document.querySelector('[data-testid="transcript"]');
  if (window.__scribe.firstText === null && transcript && transcript.textContent.trim()) {
    window.__scribe.firstText = performance.now();
  }
  const connection = document.querySelector('[data-testid="connection-state"]');
  const states = window.__scribe.states;
  if (connection && states[states.length - 1] !== connection.dataset.state) states.push(connection.dataset.state);
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")


@dataclass
class Service:
    """A `scribe serve` process on its own data directory, restartable on the same port."""

    data_dir: Path
    models_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    client_key: SigningKey = field(default_factory=lambda: ec_key("ehr-1", "ES384"))
    client_id: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """A clinician account and a registered EHR client, written before the server starts."""
        database = open_database(Settings(data_dir=self.data_dir, secret_key=KEY))
        save_user(database, USERNAME, PASSWORD, display_name="Dr. Web")
        self.client_id = register_client(
            database, "Hospital EHR", json.dumps(jwks(self.client_key)), ("system/DocumentReference.rs",)
        ).client_id
        database.engine.dispose()

    def start(self) -> None:
        self.process = start_server(self.data_dir, self.port, self.models_dir)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def ehr_token(self) -> str:
        """An access token as an EHR gets one: SMART Backend Services, a signed client assertion."""
        now = int(time.time())
        token_url = f"{self.base}/auth/token"
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + 240,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        response = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.client_key.sign(claims),
                "scope": "system/DocumentReference.rs",
            },
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def stored_audio(self, encounter_id: str) -> tuple[np.ndarray, int]:
        """The encounter's audio as the server stored it (mono float32) and its sample rate."""
        folder = self.data_dir / "audio" / encounter_id
        fmt = json.loads((folder / "format.json").read_text())
        assert fmt["encoding"] == "pcm_s16le" and fmt["channels"] == 1, fmt
        pcm = np.frombuffer((folder / "audio.pcm").read_bytes(), dtype="<i2").astype(np.float32) / 32768
        return pcm, int(fmt["sample_rate"])

    def rest(self, subject: str = USERNAME) -> httpx.Client:
        """The REST API as `subject` (a clinician's token), for what a test prepares without the page."""
        token = create_token(KEY.encode(), subject, ("user/*.*",), 600)
        enrol(self.data_dir, token)
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def drafted_note(self, *, patient: str | None = PATIENT) -> tuple[str, str]:
        """(encounter id, note id) of `DICTATION` uploaded, with its records when it has a patient, and drafted."""
        with self.rest() as api:
            body = {"patient": {"id": patient, "name": "Jane Roe"}} if patient else {}
            encounter = api.post("/v1/encounters", json={**body, "mode": "dictation"}).json()["id"]
            if patient:
                records = api.post(
                    f"/v1/encounters/{encounter}/records",
                    headers={"Content-Type": "application/fhir+json"},
                    content=BUNDLE.read_bytes(),
                )
                assert records.status_code == 201, records.text
            upload = api.post(
                f"/v1/encounters/{encounter}/audio",
                content=DICTATION.read_bytes(),
                headers={"Content-Type": "audio/wav"},
            )
            assert upload.status_code == 200, upload.text
            note = api.post(f"/v1/encounters/{encounter}/note")
            assert note.status_code == 201, note.text
            return encounter, note.json()["id"]


@contextmanager
def service(tmp_path: Path, models_dir: Path) -> Iterator[Service]:
    served = Service(tmp_path / "data", models_dir)
    served.prepare()
    served.start()
    try:
        yield served
    finally:
        served.stop()


@dataclass
class Browser:
    """Chromium with a WAV as its microphone; every request of every page is recorded."""

    playwright: object
    wav: Path
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.browser = self.playwright.chromium.launch(  # type: ignore[attr-defined]
            executable_path=str(CHROMIUM),
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={self.wav}%noloop",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.add_init_script(WATCH_PAGE)
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.on("page", self._watch)

    def _watch(self, page) -> None:
        page.on("websocket", lambda socket: self.requests.append(socket.url))

    def new_page(self):
        return self.context.new_page()

    def signed_in_page(self, base: str, path: str = "/"):
        """A new page, signed in as the clinician, at `path`."""
        page = self.new_page()
        sign_in(page, base)
        if path != "/":
            page.goto(base + path)
        return page

    def open(self, base: str, path: str):
        """A new page at `path` in this browser's session: once one page signed in, every page is."""
        page = self.new_page()
        page.goto(base + path)
        return page

    def close(self) -> None:
        self.browser.close()


@contextmanager
def chromium(wav: Path) -> Iterator[Browser]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = Browser(playwright, wav)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def another_chromium(beside: Browser, wav: Path) -> Iterator[Browser]:
    """A second Chromium from `beside`'s Playwright (one runs per thread), its microphone playing `wav`: for a
    recording while a module shares one browser."""
    browser = Browser(beside.playwright, wav)
    try:
        yield browser
    finally:
        browser.close()


class Shots:
    """Numbered screenshots of each step under the artifacts directory of one test."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def take(self, page, step: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{step}.png"), full_page=True)

    def record(self, figures: dict) -> None:
        (self.folder / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")


def sign_in(page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_test_id("username").fill(USERNAME)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("encounters").wait_for()


# A page's streamed transcript scored against offline transcription of the very audio the server stored: this far
# apart (WER), text was lost, repeated or garbled. Closer than that the two are different readings of the same
# speech: the stream decodes each utterance (ended by a 0.5 s pause) whole, offline the chunks its own voice detection
# cut, and on the synthetic voices of audio_samples/ Whisper base reads a dose or a drug name differently with where
# a chunk starts. Seen on one 2-core machine on the same recording of three dictations: 0.21 to 0.34 apart, each
# 0.32 to 0.43 against the words spoken (offline 0.34 to 0.49).
GARBLED_WER = 0.6


def offline_text(audio: np.ndarray, rate: int, models_dir: Path) -> str:
    """What `scribe transcribe`'s engine (bundled Whisper, no records) makes of the same audio."""
    from scribe.asr import choose_engine, load_engine

    settings = Settings(data_dir=models_dir.parent, asr_engine="whisper")
    (models_dir.parent / "models").mkdir(exist_ok=True)
    link = models_dir.parent / "models" / "whisper-base"
    if not link.exists():
        link.symlink_to(models_dir / "whisper-base")
    engine = load_engine(choose_engine("whisper", "encounter", settings), settings)
    return engine.transcribe(soxr.resample(audio, rate, 16000) if rate != 16000 else audio).text


def speech_onset(audio: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds to the first 20 ms frame whose RMS passes `threshold`: where speech starts."""
    frame = rate // 50
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > threshold)
    assert loud.size, "no speech in the audio"
    return float(loud[0] * frame / rate)


def wav_seconds(path: Path) -> float:
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


def same_origin(urls: list[str], base: str) -> list[str]:
    """The recorded URLs that leave scribe's origin (http and ws on the same host and port)."""
    host = base.split("://", 1)[1]
    allowed = (f"http://{host}/", f"ws://{host}/")
    return [url for url in urls if not url.startswith(allowed)]
