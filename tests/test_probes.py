"""Issue #13's hostile probes against a real `scribe serve`, over HTTP and its websocket: each answered with the
expected 4xx (an OperationOutcome where the API gives one), none with a 5xx, the process alive and /healthz
answering after every probe, and no credential sent in a URL written to its log."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from scribe.auth import throttle
from scribe.auth.users import save_user
from scribe.config import Settings
from scribe.store import open_database
from tests.accounts import bearer, enrol, token
from tests.conftest import ARTIFACTS, SAMPLES
from tests.helpers.clinic import DR_A, DR_B, EHR
from tests.helpers.server import (
    free_port,
    launch_server,
    memory_kb,
    request_head,
    send_until_answered,
    wait_until_serving,
)

pytestmark = pytest.mark.slow  # `scribe serve` with the bundled Whisper: the websocket needs a ready engine

MB = 1024 * 1024
PASSWORD = "correct horse battery"
BUNDLE = json.loads((SAMPLES / "cardiology_followup.bundle.json").read_text())
DEEP = b"[" * 100_000 + b"]" * 100_000
JSON = {"Content-Type": "application/json"}
FHIR = {**DR_A, "Content-Type": "application/fhir+json"}
START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})
# credentials a client put in a URL: none may reach the server's log (a real ticket is added once issued)
SECRETS = {"access_token": "SECRET-ACCESS-7f3a", "token": "SECRET-TOKEN-19c2", "code": "SECRET-CODE-55e0"}


class Probes:
    """The server under probe. Every HTTP answer is counted (an httpx hook), websocket handshakes and raw-socket
    answers too; `answered` checks a probe's status, then that the process lives and /healthz says 200."""

    def __init__(self, server, port: int, log: Path) -> None:
        self.server, self.port, self.log = server, port, log
        self.statuses: list[int] = []
        self.probes: list[dict] = []
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=60, event_hooks={"response": [self._count]}
        )

    def _count(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)

    def answered(self, probe: str, status: int, expect: int | tuple[int, ...], **seen) -> None:
        assert status < 500 and status in (expect if isinstance(expect, tuple) else (expect,)), (probe, status, seen)
        self.probes.append({"probe": probe, "status": status, **seen})
        assert self.server.poll() is None, f"the server died after {probe}:\n{self.log.read_text()[-4000:]}"
        health = self.http.get("/healthz", timeout=10)
        assert health.status_code == 200, (probe, health.text)

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a node: the server drains and exits 0."""
        self.http.close()
        self.server.send_signal(signal.SIGTERM)
        assert self.server.wait(timeout=60) == 0, self.log.read_text()[-4000:]

    def call(self, probe: str, method: str, path: str, expect=422, headers=DR_A, **kwargs) -> httpx.Response:
        """An HTTP probe; a refusal must be a FHIR OperationOutcome saying what was wrong."""
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.answered(probe, response.status_code, expect)
        if response.status_code >= 400:
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["diagnostics"], probe
        return response

    def raw(self, probe: str, head: bytes, chunks, *, chunked: bool, expect: int = 413) -> tuple[int, float]:
        """A request written on a socket (a declared length it never sends, a chunked body without end); the body
        bytes sent before the server answered, and how long that took."""
        answer, sent, seconds = send_until_answered(self.port, head, chunks, chunked=chunked)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
        self.statuses.append(status)
        self.answered(probe, status, expect, body_bytes_sent=sent, seconds=round(seconds, 3))
        return sent, seconds

    def stream(
        self,
        probe: str,
        encounter: str,
        frames: list[str | bytes],
        expect: tuple[str | None, int],
        *,
        start: bool = True,
        subject: str = "dr-a",
        query: str = "",
    ) -> None:
        """Open the encounter's stream socket (with `subject`'s token, or `query`), send `start` then `frames`; the
        error code and close code the server ends it with must be `expect`."""
        headers = {} if query else {"Authorization": f"Bearer {token(subject)}"}
        url = f"ws://127.0.0.1:{self.port}/v1/encounters/{encounter}/stream{query}"
        error, code = None, None
        try:
            ws = connect(url, additional_headers=headers, max_size=None, open_timeout=30)
        except InvalidStatus as refused:  # the handshake itself was answered with an HTTP status
            self.statuses.append(refused.response.status_code)
            raise
        with ws:
            assert ws.response is not None
            self.statuses.append(ws.response.status_code)
            try:
                if start:
                    ws.send(START)
                    assert json.loads(ws.recv(timeout=30))["type"] == "ready", probe
                for frame in frames:
                    ws.send(frame)
                while True:
                    message = json.loads(ws.recv(timeout=30))
                    error = message["code"] if message["type"] == "error" else error
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
        assert (error, code) == expect, (probe, error, code)
        self.answered(probe, 101, 101, error=error, close_code=code)


@pytest.fixture
def probes(tmp_path: Path, models_dir: Path) -> Iterator[Probes]:
    """`scribe serve` on its own data directory (its output in a file), the suite's clinicians and EHR enrolled,
    dr-a with a password; killed afterwards unless the test stopped it."""
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "server.log"
    server = launch_server(data_dir, port, models_dir, log=log)
    try:
        wait_until_serving(server, port, log=log)
        enrol(data_dir, DR_A, DR_B, EHR)
        database = open_database(Settings(data_dir=data_dir))
        save_user(database, "dr-a", PASSWORD, update=True)
        database.engine.dispose()
        yield Probes(server, port, log)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def test_every_hostile_probe_is_a_4xx_and_the_server_lives(probes: Probes):
    """Issue #13's first target on a real process: 0 answers with a 5xx and 0 deaths over every probe it lists."""
    started = time.monotonic()
    patient = {"id": BUNDLE["entry"][0]["resource"]["id"], "name": "Jane Roe"}
    encounter = probes.call("an encounter", "POST", "/v1/encounters", 201, json={"patient": patient}).json()["id"]
    probes.call("its records", "POST", f"/v1/encounters/{encounter}/records", 201, FHIR, json=BUNDLE)
    wav = {**DR_A, "Content-Type": "audio/wav"}
    audio = (SAMPLES / "cardiology_followup.wav").read_bytes()
    probes.call("its audio, transcribed", "POST", f"/v1/encounters/{encounter}/audio", 200, wav, content=audio)
    note = probes.call("its note drafted", "POST", f"/v1/encounters/{encounter}/note", 201).json()
    note_path = f"/v1/notes/{note['id']}"
    before = memory_kb(probes.server.pid)  # start-up, Whisper loaded, one upload transcribed: the peak so far
    memory_kb(probes.server.pid, reset_peak=True)  # from here, the probes' own peak

    identity(probes)
    hostile_json(probes, encounter, note_path)
    hostile_text(probes, encounter, note_path, note["note"])
    bodies(probes, encounter, note_path)
    authorisation(probes, encounter, note["id"])
    ticket = stream_socket(probes)
    secrets_in_urls(probes, ticket)
    throttling(probes)

    during = memory_kb(probes.server.pid)["VmHWM"]
    peak = max(before["VmHWM"], during) / 1024
    failed = sum(status >= 500 for status in probes.statuses)
    figures = {
        "requests": len(probes.statuses),
        "status_5xx": failed,
        "server_deaths": 0,
        "answers_checked": len(probes.probes),
        "server_rss_before_probes_mb": round(before["VmRSS"] / 1024),
        "peak_server_rss_during_probes_mb": round(during / 1024),
        "peak_server_rss_mb": round(peak),
        "seconds": round(time.monotonic() - started, 1),
        "answers": probes.probes,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "probes.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\nprobes: {len(probes.statuses)} requests, {failed} with status 5xx, server alive after each; "
        f"peak server RSS {peak:.0f} MB"
    )
    assert failed == 0
    probes.stop()
    secrets_stay_out_of_the_log(probes, ticket)


def identity(probes: Probes) -> None:
    """A token signed with the right key that names nobody: no account, no registered client."""
    probes.call("token for an unknown user", "GET", "/v1/encounters", 401, bearer("nobody"))
    ghost = bearer("ehr-ghost", ("system/DocumentReference.rs",))
    probes.call("token for an unknown client", "GET", "/fhir/DocumentReference?patient=pt-1", 401, ghost)
    probes.stream(
        "stream with a token for nobody", "enc-ghost", [], ("unauthorized", 4401), start=False, subject="nobody"
    )


def hostile_json(probes: Probes, encounter: str, note_path: str) -> None:
    """100 000-deep arrays, NaN and Infinity in an Observation, a key twice in a Bundle."""
    deep = {"content": DEEP, "headers": {**DR_A, **JSON, "If-Match": 'W/"1"'}}
    probes.call("100 000-deep array to records", "POST", f"/v1/encounters/{encounter}/records", **deep)
    probes.call("100 000-deep array to a note edit", "PUT", note_path, **deep)
    probes.call("100 000-deep array to sign", "POST", f"{note_path}/sign", **deep)
    text = json.dumps(BUNDLE)
    for number in ("NaN", "Infinity", "-Infinity"):
        assert '"value": 150' in text
        records = text.replace('"value": 150', f'"value": {number}', 1).encode()
        refused = probes.call(
            f"{number} in an Observation", "POST", f"/v1/encounters/{encounter}/records", 422, FHIR, content=records
        )
        assert f"{number} is not a JSON number" in refused.json()["issue"][0]["diagnostics"]
    twice = text.replace('"resourceType": "Bundle",', '"resourceType": "Bundle", "type": "batch",', 1)
    refused = probes.call(
        "duplicate keys in a Bundle", "POST", f"/v1/encounters/{encounter}/records", 422, FHIR, content=twice.encode()
    )
    assert "appears twice" in refused.json()["issue"][0]["diagnostics"]


def hostile_text(probes: Probes, encounter: str, note_path: str, note: dict) -> None:
    """NUL and bidi overrides in a patient name, a note edit, an attestation and an amendment reason."""
    for name in ("Jane\x00Roe", "Jane\u202eeoR"):
        probes.call(
            f"{name!r} as a patient name", "POST", "/v1/encounters", json={"patient": {"id": "pt-9", "name": name}}
        )
    bundle = json.loads(json.dumps(BUNDLE))
    bundle["entry"][0]["resource"]["name"] = [{"text": "Jane \u2067Roe"}]
    unnamed = probes.http.post("/v1/encounters", json={}, headers=DR_A).json()["id"]
    probes.call("bidi isolate in a records patient name", "POST", f"/v1/encounters/{unnamed}/records", json=bundle)
    for change in ({"text": "Return in 4 weeks\x00"}, {"text": "Return in 4 weeks.", "dose": "5\u202emg"}):
        edited = {**note, "plan": [{**change, "evidence": []}]}
        headers = {**DR_A, "If-Match": 'W/"1"'}
        probes.call(f"{change!r} in a note edit", "PUT", note_path, headers=headers, json=edited)
    probes.call("NUL in an attestation", "POST", f"{note_path}/sign", json={"attestation": "I attest\x00"})
    probes.call("bidi in an attestation", "POST", f"{note_path}/sign", json={"attestation": "Seen\u202d."})
    assert probes.http.get(note_path, headers=DR_A).json()["version"] == 1  # nothing was stored
    probes.call("start=inf on the audio span", "GET", f"/v1/encounters/{encounter}/audio?start=inf")
    probes.call("end=nan on the audio span", "GET", f"/v1/encounters/{encounter}/audio?start=0&end=nan")
    signed = probes.call("sign", "POST", f"{note_path}/sign", 200, json={"confirm_unsupported": True})
    assert signed.json()["status"] == "signed"
    for reason in ("typo\u2066", "typo\x00"):
        probes.call(f"{reason!r} as an amendment reason", "POST", f"{note_path}/amend", json={"reason": reason})


def bodies(probes: Probes, encounter: str, note_path: str) -> None:
    """A declared 2 GB sent as 4 KB, then bodies without end: refused early, cut off at the limit."""
    dr_a = DR_A["Authorization"].removeprefix("Bearer ")
    upload = request_head(probes.port, f"/v1/encounters/{encounter}/audio", dr_a, "audio/ogg", 2_000_000_000)
    edit = request_head(probes.port, note_path, dr_a, "application/json", 2_000_000_000).replace(b"POST", b"PUT", 1)
    for probe, head in (("declared 2 GB upload", upload), ("declared 2 GB note edit", edit)):
        sent, seconds = probes.raw(probe, head, [b"\0" * 4096], chunked=False)
        assert seconds < 1.0 and sent == 4096, (probe, seconds)
    endless = (b"[" * 65536 for _ in range(1000))
    edit = request_head(probes.port, note_path, dr_a, "application/json", None).replace(b"POST", b"PUT", 1)
    sent, _ = probes.raw("endless chunked note edit", edit, endless, chunked=True)
    assert 2 * MB <= sent <= 2 * MB + 16 * MB, sent  # the limit, and what the socket buffers took
    endless = (b"\0" * MB for _ in range(1000))
    upload = request_head(probes.port, f"/v1/encounters/{encounter}/audio", dr_a, "audio/ogg", None)
    sent, _ = probes.raw("endless chunked upload", upload, endless, chunked=True)
    assert 100 * MB <= sent <= 116 * MB, sent


def authorisation(probes: Probes, encounter: str, note_id: str) -> None:
    """Another clinician's encounter asked for a stream ticket; an EHR without the drafts scope looking for drafts."""
    probes.call(
        "dr-b's ticket for dr-a's encounter", "POST", "/v1/stream-tickets", 403, DR_B, json={"encounter_id": encounter}
    )
    draft = probes.http.post(f"/v1/notes/{note_id}/amend", json={"reason": "dose corrected"}, headers=DR_A).json()
    patient = BUNDLE["entry"][0]["resource"]["id"]
    found = probes.call("EHR searching drafts", "GET", f"/fhir/DocumentReference?_id={draft['id']}", 200, EHR)
    assert found.json()["total"] == 0
    found = probes.call(
        "EHR listing the patient's notes", "GET", f"/fhir/DocumentReference?patient={patient}", 200, EHR
    )
    assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [note_id]  # the signed one only
    probes.call("EHR reading a draft", "GET", f"/fhir/DocumentReference/{draft['id']}", 404, EHR)


def stream_socket(probes: Probes) -> str:
    """Malformed websocket frames on a clinician's own stream; a real ticket (its value must stay out of the log)."""
    target = "enc-probe-ws"
    probes.stream("garbage text frame", target, ["{not json"], ("bad_json", 4400))
    probes.stream("unknown message type", target, [json.dumps({"type": "hello"})], ("unknown_type", 4400))
    probes.stream("JSON array as a message", target, ["[]"], ("bad_message", 4400))
    probes.stream("5 KB text message", target, ["x" * 5000], ("message_too_large", 4413))
    probes.stream("binary frame before start", target, [b"\0" * 3200], ("frame_before_start", 4422), start=False)
    probes.stream("64 KB audio frame", target, [b"\0" * 65536], ("frame_too_large", 4413))
    probes.stream("odd-length audio frame", target, [b"\0" * 3201], ("odd_length", 4422))
    probes.stream("20 MB binary frame", target, [b"\0" * (20 * MB)], (None, 1009))
    issued = probes.call(
        "a ticket for one's own stream", "POST", "/v1/stream-tickets", 200, json={"encounter_id": target}
    )
    ticket = issued.json()["ticket"]
    probes.stream("garbage on a ticket's stream", target, ["\x00\x01"], ("bad_json", 4400), query=f"?ticket={ticket}")
    probes.stream("a ticket used twice", target, [], ("unauthorized", 4401), start=False, query=f"?ticket={ticket}")
    return ticket


def secrets_in_urls(probes: Probes, ticket: str) -> None:
    """Credentials in query strings, as a careless client or a redirect puts them there."""
    for name, value in SECRETS.items():
        probes.call(f"?{name}= on the API", "GET", f"/v1/encounters?{name}={value}", 200)
        probes.call(f"?{name}= unauthenticated", "GET", f"/v1/encounters?{name}={value}", 401, {})
        page = probes.http.get(f"/?{name}={value}&state=x")
        probes.answered(f"?{name}= on a page", page.status_code, 200)
    probes.stream("a made-up ticket", "enc-x", [], ("unauthorized", 4401), start=False, query="?ticket=SECRET-TICKET")


def throttling(probes: Probes) -> None:
    """One address failing one clinician's password, then spraying others: it is throttled; she is not locked out."""

    def sign_in(client: httpx.Client, username: str, password: str) -> int:
        return client.post("/v1/session", data={"username": username, "password": password}).status_code

    for _ in range(throttle.ACCOUNT_LIMIT):
        probes.answered("wrong password for dr-a", sign_in(probes.http, "dr-a", "wrong password!!"), 401)
    probes.answered("dr-a from the guessing address", sign_in(probes.http, "dr-a", PASSWORD), 429)
    elsewhere = httpx.Client(
        base_url=probes.http.base_url,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        event_hooks={"response": [probes._count]},
    )
    with elsewhere:
        probes.answered("dr-a from her own address", sign_in(elsewhere, "dr-a", PASSWORD), 200)
    for n in range(throttle.ACCOUNT_LIMIT, throttle.ADDRESS_LIMIT):
        probes.answered("password spraying", sign_in(probes.http, f"user-{n}", "Spring2024!guess"), 401)
    form = {"username": "dr-a", "password": PASSWORD}
    refused = probes.call("the sprayed address, a right password", "POST", "/v1/session", 429, {}, data=form)
    assert refused.json()["issue"][0]["diagnostics"].startswith("too many failed attempts from this address")
    token_request = probes.http.post("/auth/token", data={"grant_type": "client_credentials"})
    probes.answered("sprayed address asks a token", token_request.status_code, 429)


def secrets_stay_out_of_the_log(probes: Probes, ticket: str) -> None:
    output = probes.log.read_text()
    assert "[redacted]" in output  # the lines are there, their credentials masked
    for secret in (*SECRETS.values(), ticket, "SECRET-TICKET", DR_A["Authorization"][7:], PASSWORD):
        assert secret not in output, f"{secret[:12]}… is in the server's log"
    assert "Traceback" not in output, output[-4000:]
