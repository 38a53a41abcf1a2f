"""`scribe bench fhir`: FHIR search latency against a real `scribe serve` holding N stored notes.

Seeding writes N notes the way the service stores them (SOAP body, text/html renderings, the
DocumentReference and Provenance built and validated per note) across many patients and two
years of dates; a handful of real drafts from the extractive engine are reused as bodies.
Then a server process is started on the seeded database and every checklist search is timed
from a client on the same machine (HTTP keep-alive, one request at a time).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx

from scribe.config import Settings

SEARCHES = (
    "read",
    "_id",
    "patient",
    "patient+category",
    "patient+category+date",
    "patient+type",
    "patient+status",
    "patient+_revinclude",
    "next-page",
)
READER_SCOPES = ("system/DocumentReference.rs", "system/Provenance.rs")  # an EHR's: signed notes only
CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category|clinical-note"
DIALOGUES = [
    "[doctor] your blood pressure is 142 over 88 .\n[patient] i take lisinopril 10 mg every morning .\n"
    "[doctor] for the hypertension we will increase lisinopril to 20 mg daily .",
    "[patient] my knee has hurt for three weeks .\n[doctor] any fever ?\n[patient] no .\n"
    "[doctor] i think it is osteoarthritis . start naproxen 500 mg twice a day .",
    "[doctor] how is the diabetes ?\n[patient] fine , i take metformin 1000 mg twice daily .\n"
    "[doctor] your a1c was 7.2 . continue metformin and follow up in three months .",
]


def _percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def seed(settings: Settings, notes: int, patients: int, *, rng: random.Random) -> list[tuple[str, str]]:
    """Store `notes` notes over `patients` patients; returns (note id, patient id) of each one an EHR can read."""
    from scribe.notes.extractive import ExtractiveEngine
    from scribe.notes.grounding import ground_note
    from scribe.notes.inputs import NoteInput, transcript_from_text
    from scribe.notes.stored import refresh_fhir
    from scribe.render import render_note
    from scribe.store import open_database
    from scribe.store.models import Encounter, Note, NoteVersion

    database = open_database(settings)
    bodies = []
    for dialogue in DIALOGUES:
        note_input = NoteInput(transcript_from_text(dialogue))
        soap = ground_note(ExtractiveEngine().draft(note_input), note_input)
        bodies.append(
            (
                soap.to_json(),
                render_note(soap, note_input.transcript, fmt="txt", status="signed"),
                render_note(soap, note_input.transcript, fmt="html", status="signed"),
            )
        )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    made: list[tuple[str, str]] = []
    batch = 500
    for first in range(0, notes, batch):
        with database.session() as session, session.begin():
            for n in range(first, min(notes, first + batch)):
                patient = f"pt-{rng.randrange(patients):05d}"
                clinician = f"dr-{rng.randrange(50):02d}"
                moment = start + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
                encounter = Encounter(
                    id=uuid.uuid4().hex,
                    clinician=clinician,
                    patient_id=patient,
                    patient_name=None,
                    mode="encounter",
                    status="signed",
                    created_at=moment,
                    updated_at=moment,
                )
                status = "signed" if n % 10 != 9 else rng.choice(["draft", "amended"])  # the first is readable
                body, text, html = bodies[n % len(bodies)]
                note = Note(
                    id=uuid.uuid4().hex,
                    encounter_id=encounter.id,
                    patient_id=patient,
                    clinician=clinician,
                    note_type="progress_note",
                    status=status,
                    version=1,
                    fhir_version=0,
                    created_at=moment,
                    updated_at=moment,
                    signed_at=moment if status != "draft" else None,
                    signed_by=clinician if status != "draft" else None,
                )
                session.add_all([encounter, note])
                session.add(
                    NoteVersion(
                        note_id=note.id,
                        version=1,
                        body=body,
                        text_rendering=text,
                        html_rendering=html,
                        created_by="engine:extractive",
                        created_at=moment,
                    )
                )
                session.flush()
                refresh_fhir(session, note, encounter)
                if status != "draft":  # what an EHR reads: a draft is not part of the record
                    made.append((note.id, patient))
    database.engine.dispose()
    return made


def register_bench_client(settings: Settings) -> str:
    """The client id of an EHR registered for the bench (a fresh P-384 key, never used to sign): scribe honours a
    system token only for a registered client."""
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from scribe.auth.smart import register_client
    from scribe.store import open_database

    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    database = open_database(settings)
    try:
        return register_client(
            database, "scribe bench fhir", json.dumps({"keys": [{**public, "kid": "bench"}]}), READER_SCOPES
        ).client_id
    finally:
        database.engine.dispose()


@contextmanager
def own_schema(database_url: str | None, schema: str | None) -> Iterator[str | None]:
    """On PostgreSQL, a schema of the bench's own (the URL's search path for seeding and the server), dropped after.

    The bench never writes its ten thousand made-up notes into the schema a site keeps real ones in.
    """
    if not database_url or not schema:
        yield database_url
        return
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from scribe.store.db import DatabaseError, make_engine

    try:
        make_engine(database_url, schema=schema).dispose()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot connect to the database: {str(exc).splitlines()[0]}") from None
    separator = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        engine = make_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(settings: Settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "SCRIBE_DATA_DIR": str(settings.data_dir),
        "SCRIBE_SECRET_KEY": settings.secret_key or "",
        "SCRIBE_ASR_ENGINE": "whisper",
    }
    if settings.database_url:
        env["SCRIBE_DATABASE_URL"] = settings.database_url
    server = subprocess.Popen(
        [sys.executable, "-m", "scribe.cli", "serve", "--port", str(port), "--no-asr"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"scribe serve exited: {server.stderr.read().decode()[-500:] if server.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("scribe serve did not start within 60 s")


def _queries(made: list[tuple[str, str]], rng: random.Random, rounds: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(rounds):
        note_id, patient = rng.choice(made)
        day = datetime(2025, 1, 1) + timedelta(days=rng.randrange(600))
        out += [
            ("read", f"/fhir/DocumentReference/{note_id}"),
            ("_id", f"/fhir/DocumentReference?_id={note_id}"),
            ("patient", f"/fhir/DocumentReference?patient={patient}"),
            ("patient+category", f"/fhir/DocumentReference?patient={patient}&category={CATEGORY}"),
            (
                "patient+category+date",
                f"/fhir/DocumentReference?patient={patient}&category={CATEGORY}"
                f"&date=ge{day:%Y-%m-%d}&date=le{day + timedelta(days=120):%Y-%m-%d}",
            ),
            ("patient+type", f"/fhir/DocumentReference?patient={patient}&type=http://loinc.org|11506-3"),
            ("patient+status", f"/fhir/DocumentReference?patient={patient}&status=current"),
            ("patient+_revinclude", f"/fhir/DocumentReference?patient={patient}&_revinclude=Provenance:target"),
            ("next-page", f"/fhir/DocumentReference?patient={patient}&_count=2&_offset=2"),
        ]
    rng.shuffle(out)
    return out


def bench_fhir(
    notes: int = 10_000,
    patients: int = 1_000,
    rounds: int = 100,
    *,
    database_url: str | None = None,
    seed_value: int = 7,
    progress: IO[str] | None = None,
) -> dict[str, Any]:
    """Seed, serve, time every checklist search `rounds` times; returns per-search p50/p95/max in ms."""
    from scribe.auth.tokens import create_token

    rng = random.Random(seed_value)
    schema = f"scribe_bench_{uuid.uuid4().hex[:12]}" if database_url else None
    with tempfile.TemporaryDirectory(prefix="scribe-bench-fhir-") as tmp, own_schema(database_url, schema) as url:
        settings = Settings(data_dir=Path(tmp), secret_key="b" * 48, database_url=url)
        started = time.perf_counter()
        made = seed(settings, notes, patients, rng=rng)
        seed_s = time.perf_counter() - started
        if progress:
            progress.write(f"seeded {notes} notes over {patients} patients in {seed_s:.1f} s\n")
        port = _free_port()
        server = _start_server(settings, port)
        try:
            token = create_token(b"b" * 48, register_bench_client(settings), READER_SCOPES, 3600)
            timings: dict[str, list[float]] = {name: [] for name in SEARCHES}
            totals: dict[str, list[int]] = {name: [] for name in SEARCHES}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client:
                for _, path in _queries(made, rng, 5):  # warm-up: connections, caches, imports
                    client.get(path)
                for name, path in _queries(made, rng, rounds):
                    begun = time.perf_counter()
                    response = client.get(path)
                    elapsed = time.perf_counter() - begun
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                    timings[name].append(elapsed * 1000)
                    if name != "read":
                        totals[name].append(response.json()["total"])
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    every = [t for values in timings.values() for t in values]
    searches = {
        name: {
            "p50_ms": round(_percentile(v, 50), 2),
            "p95_ms": round(_percentile(v, 95), 2),
            "max_ms": round(max(v), 2),
            "requests": len(v),
            "mean_matches": round(statistics.mean(totals[name]), 1) if totals[name] else None,
        }
        for name, v in timings.items()
    }
    return {
        "notes": notes,
        "patients": patients,
        "database": "postgresql" if database_url else "sqlite",
        "schema": schema,
        "seed_s": round(seed_s, 1),
        "searches": searches,
        "overall": {
            "p50_ms": round(_percentile(every, 50), 2),
            "p95_ms": round(_percentile(every, 95), 2),
            "max_ms": round(max(every), 2),
            "requests": len(every),
        },
    }


def print_fhir_table(result: dict[str, Any], out: IO[str]) -> None:
    out.write(f"FHIR search on {result['notes']} notes ({result['patients']} patients, {result['database']})\n")
    out.write(f"{'search':<24}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'matches':>9}\n")
    for name, row in result["searches"].items():
        matches = "-" if row["mean_matches"] is None else f"{row['mean_matches']:.1f}"
        out.write(f"{name:<24}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}{matches:>9}\n")
    overall = result["overall"]
    out.write(f"{'all':<24}{overall['p50_ms']:>9.2f}{overall['p95_ms']:>9.2f}{overall['max_ms']:>9.2f}\n")
    out.flush()
