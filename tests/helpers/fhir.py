"""The FHIR side in tests: Bundles of prior records to read, a note as `document_reference` reads it, and a small
EHR endpoint to deliver to."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from scribe.fhir.resources import NoteDocument

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def bundle(*resources: dict, full_urls: tuple[str | None, ...] = ()) -> dict:
    """A collection Bundle of `resources`, each with its fullUrl when one is given."""
    entries = []
    for i, resource in enumerate(resources):
        entry: dict = {"resource": resource}
        if i < len(full_urls) and full_urls[i]:
            entry["fullUrl"] = full_urls[i]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def coded(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    """A CodeableConcept with one coding (and its text)."""
    concept: dict = {"coding": [{"system": system, "code": code, **({"display": display} if display else {})}]}
    return {**concept, "text": text} if text else concept


def status(system_name: str, code: str) -> dict:
    """A status CodeableConcept from terminology.hl7.org (clinical status, verification status)."""
    return coded(f"http://terminology.hl7.org/CodeSystem/{system_name}", code, code.title())


DRAFTED_AT = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def note_document(**changes) -> NoteDocument:
    """A complete draft progress note (patient, author, encounter, period); a test changes what it is about."""
    values = dict(
        note_id="note-1",
        version=1,
        status="draft",
        note_type="progress_note",
        patient_id="pt-1001",
        patient_name="Brian White",
        author="dr.jones",
        author_name="Dr Ana Jones",
        created_at=DRAFTED_AT,
        updated_at=DRAFTED_AT,
        text="S: chest pain",
        html="<p>S: chest pain</p>",
        engine="extractive",
        model=None,
        encounter_id="enc-1",
        period_start=DRAFTED_AT - timedelta(minutes=15),
        period_end=DRAFTED_AT,
    )
    values.update(changes)
    return NoteDocument(**values)


class FhirServer:
    """A small FHIR endpoint that honours conditional create/update on identifier, like an EHR does."""

    def __init__(self) -> None:
        self.resources: dict[str, dict] = {}  # identifier -> resource
        self.requests: list[tuple[str, str, dict]] = []
        self.fail_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def _reply(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((method, self.path, dict(self.headers)))
                if server.fail_next:
                    server.fail_next -= 1
                    return self._reply(500, {"resourceType": "OperationOutcome"})
                if method == "POST":
                    identifier = parse_qs(self.headers["If-None-Exist"])["identifier"][0]
                    if identifier in server.resources:
                        return self._reply(200, server.resources[identifier])
                else:
                    identifier = parse_qs(urlparse(self.path).query)["identifier"][0]
                server.resources[identifier] = body
                self._reply(201, body)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
