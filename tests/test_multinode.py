"""Two real `scribe serve` processes on one PostgreSQL database and one audio directory, as behind a load balancer:
what one node signs the other serves, a note is signed once however many nodes race to sign it, the EHR outbox
delivers each note once while both nodes drain it, and two nodes starting on an empty database migrate it once."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from scribe.config import Settings
from scribe.encounters import save_transcript
from scribe.fhir.delivery import pending_count
from scribe.fhir.resources import IDENTIFIER_SYSTEM
from scribe.notes.inputs import transcript_from_text
from scribe.store import Database, open_database
from scribe.store.db import MIGRATIONS, make_engine
from scribe.store.models import Encounter, SignOff, User
from tests.accounts import bearer, enrol
from tests.conftest import PG_URL, isolate_environment
from tests.helpers.fhir import FhirServer
from tests.helpers.server import free_port, launch_server, wait_until_serving
from tests.test_fhir_api import DIALOGUE

pytestmark = pytest.mark.slow  # every test runs `scribe serve` nodes as subprocesses
PUBLIC_URL = "http://scribe.test"  # what the load balancer's address would be: both nodes build the same links
DR_A = bearer("dr-a", audience=PUBLIC_URL)
EHR = bearer("ehr-1", ("system/DocumentReference.rs",), audience=PUBLIC_URL)
LOGGED_ERROR = re.compile(r" (ERROR|CRITICAL) |Traceback|scribe: error")


@dataclass
class Node:
    url: str
    process: subprocess.Popen
    log: Path


@dataclass
class Cluster:
    nodes: tuple[Node, Node]
    database: Database  # the test's own connection to the nodes' database


@contextmanager
def new_database() -> Iterator[str]:
    """The URL of an empty PostgreSQL database of its own, dropped afterwards (the nodes read only a URL, which
    cannot name a schema)."""
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    name = f"scribe_multinode_{uuid.uuid4().hex[:12]}"
    server = make_engine(PG_URL)
    admin = server.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def start_nodes(tmp_path: Path, database_url: str, env: dict[str, str] | None = None) -> tuple[Node, Node]:
    """Two REST/FHIR nodes (`--no-asr`) launched together on one database and one audio directory; returned once
    both answer."""
    nodes = []
    for name in ("a", "b"):
        port, log = free_port(), tmp_path / f"node-{name}.log"
        process = launch_server(
            tmp_path / f"data-{name}",
            port,
            asr=False,
            log=log,
            env={
                "SCRIBE_DATABASE_URL": database_url,
                "SCRIBE_AUDIO_DIR": str(tmp_path / "shared-audio"),
                "SCRIBE_NODE_ID": f"node-{name}",
                "SCRIBE_PUBLIC_URL": PUBLIC_URL,
                "SCRIBE_NOTE_ENGINE": "extractive",
                **(env or {}),
            },
        )
        nodes.append(Node(f"http://127.0.0.1:{port}", process, log))
    try:
        for node in nodes:
            wait_until_serving(node.process, int(node.url.rsplit(":", 1)[1]), ready=False, log=node.log)
    except BaseException:  # one failed to start: the other must not outlive the test
        stop_nodes(tuple(nodes))
        raise
    return nodes[0], nodes[1]


def stop_nodes(nodes: tuple[Node, ...]) -> None:
    for node in nodes:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


@pytest.fixture(scope="module")
def ehr() -> Iterator[FhirServer]:
    """The site's EHR, as far as the outbox sees it: it records every request it gets."""
    server = FhirServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, ehr: FhirServer) -> Iterator[Cluster]:
    """Two nodes for the module's tests (each works on notes of its own), delivering to `ehr` every 0.1 s, on a
    database migrated and given its accounts first."""
    with pytest.MonkeyPatch.context() as monkeypatch, new_database() as url, ExitStack() as stack:
        isolate_environment(tmp_path_factory, monkeypatch)
        tmp_path = tmp_path_factory.mktemp("multinode")
        database = open_database(Settings(data_dir=tmp_path / "tester", database_url=url))
        stack.callback(database.engine.dispose)
        enrol(database, DR_A, EHR)
        nodes = start_nodes(tmp_path, url, {"SCRIBE_EHR_FHIR_URL": ehr.url, "SCRIBE_DELIVERY_INTERVAL_S": "0.1"})
        stack.callback(stop_nodes, nodes)
        yield Cluster(nodes, database)


def drafted_note(cluster: Cluster, node: Node, patient: str) -> tuple[str, str]:
    """(note id, ETag) of a note drafted on `node` by the extractive engine from a text transcript."""
    encounter = httpx.post(f"{node.url}/v1/encounters", json={"patient": {"id": patient}}, headers=DR_A)
    assert encounter.status_code == 201, encounter.text
    with cluster.database.session() as session, session.begin():
        save_transcript(
            session, session.get(Encounter, encounter.json()["id"]), transcript_from_text(DIALOGUE), source="upload"
        )
    draft = httpx.post(f"{node.url}/v1/encounters/{encounter.json()['id']}/note", headers=DR_A, timeout=30)
    assert draft.status_code == 201, draft.text
    return draft.json()["id"], draft.headers["etag"]


def sign_together(requests: list[tuple[Node, str, str]]) -> list[httpx.Response]:
    """POST every (node, note id, If-Match) sign request at once; the answers in the same order."""

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=len(requests))) as client:
            return await asyncio.gather(
                *(
                    client.post(f"{node.url}/v1/notes/{note_id}/sign", headers={**DR_A, "If-Match": etag})
                    for node, note_id, etag in requests
                )
            )

    return asyncio.run(fire())


def test_a_note_signed_on_one_node_is_served_over_fhir_by_the_other(cluster: Cluster):
    a, b = cluster.nodes
    note_id, _ = drafted_note(cluster, b, "pt-mn-1")
    assert httpx.post(f"{a.url}/v1/notes/{note_id}/sign", headers=DR_A).status_code == 200
    found = httpx.get(f"{b.url}/fhir/DocumentReference", params={"patient": "pt-mn-1"}, headers=EHR)
    assert found.status_code == 200, found.text
    assert [entry["resource"]["id"] for entry in found.json()["entry"]] == [note_id]
    on_a = httpx.get(f"{a.url}/fhir/DocumentReference/{note_id}", headers=EHR)
    on_b = httpx.get(f"{b.url}/fhir/DocumentReference/{note_id}", headers=EHR)
    assert on_a.status_code == on_b.status_code == 200
    assert on_b.json() == on_a.json() and on_b.headers["etag"] == on_a.headers["etag"]
    assert on_b.json()["docStatus"] == "final" and found.json()["entry"][0]["resource"] == on_b.json()


def test_a_hundred_sign_attempts_across_both_nodes_sign_once(cluster: Cluster):
    a, b = cluster.nodes
    note_id, etag = drafted_note(cluster, a, "pt-mn-2")
    answers = sign_together([(node, note_id, etag) for _ in range(50) for node in (a, b)])
    counts = Counter(answer.status_code for answer in answers)
    print(f"100 sign attempts across two nodes: {dict(sorted(counts.items()))}")
    assert counts == {200: 1, 409: 99}, [r.text for r in answers if r.status_code not in (200, 409)][:3]
    assert all(r.json()["resourceType"] == "OperationOutcome" for r in answers if r.status_code == 409)
    note = httpx.get(f"{b.url}/v1/notes/{note_id}", headers=DR_A).json()
    assert note["status"] == "signed" and note["version"] == 2
    with cluster.database.session() as session:
        assert session.scalar(select(func.count()).select_from(SignOff).where(SignOff.note_id == note_id)) == 1


def test_the_outbox_delivers_each_signed_note_once_while_both_nodes_deliver(cluster: Cluster, ehr: FhirServer):
    nodes = cluster.nodes
    drafts = [(nodes[i % 2], *drafted_note(cluster, nodes[i % 2], f"pt-mn-3-{i}")) for i in range(20)]
    assert [answer.status_code for answer in sign_together(drafts)] == [200] * 20
    deadline = time.monotonic() + 60
    while pending_count(cluster.database) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending_count(cluster.database) == 0
    time.sleep(0.5)  # several passes of both loops: a second copy would have arrived by now
    sent = Counter(parse_qs(headers["If-None-Exist"])["identifier"][0] for _, _, headers in ehr.requests)
    assert {f"{IDENTIFIER_SYSTEM}|{note_id}" for _, note_id, _ in drafts} <= set(sent)
    assert set(sent.values()) == {1} and {method for method, _, _ in ehr.requests} == {"POST"}


def test_two_nodes_starting_together_on_an_empty_database_migrate_it_once(tmp_path: Path):
    with new_database() as url:
        nodes = start_nodes(tmp_path, url)  # without the migration lock, one of them exits: "cannot migrate"
        try:
            for node in nodes:
                assert httpx.get(f"{node.url}/healthz").status_code == 200
        finally:
            stop_nodes(nodes)
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
                accounts = connection.execute(select(func.count()).select_from(User)).scalar()
        finally:
            engine.dispose()
    assert versions == [ScriptDirectory(str(MIGRATIONS)).get_current_head()] and accounts == 1
    logs = [node.log.read_text() for node in nodes]
    for log in logs:
        assert not LOGGED_ERROR.search(log), log
    assert sum("first start" in log for log in logs) == 1  # one node made the first account, the other saw it
