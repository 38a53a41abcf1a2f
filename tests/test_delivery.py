"""Signed notes reach the EHR through the outbox: retried with back-off, never duplicated, delivered after a crash."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from scribe.fhir.delivery import deliver_due, delivery_loop, enqueue, pending_count, retry_delay
from scribe.fhir.resources import document_reference
from scribe.store.db import Database, make_engine
from scribe.store.outbox import OutboxMessage
from tests.helpers.fhir import FhirServer, note_document

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def ehr():
    server = FhirServer()
    yield server
    server.close()


@pytest.fixture
def database(tmp_path) -> Database:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    OutboxMessage.__table__.create(engine)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def signed(note_id: str, **changes) -> dict:
    """A signed note's DocumentReference with its renderings embedded, as the outbox carries it."""
    values = dict(note_id=note_id, version=2, status="signed", signed_by="dr.jones", signed_at=NOW)
    return document_reference(note_document(**{**values, **changes}), embed=True)


def queue(database: Database, resource: dict, **kwargs) -> None:
    with database.session() as session, session.begin():
        enqueue(session, resource, note_id=resource["id"], version=int(resource["meta"]["versionId"]), **kwargs)


def test_signed_note_is_created_once_with_a_conditional_create(database, ehr):
    queue(database, signed("note-1"))
    with httpx.Client(timeout=5) as client:
        assert deliver_due(database, ehr.url, client).delivered == 1
        assert deliver_due(database, ehr.url, client).delivered == 0  # nothing left
    method, path, headers = ehr.requests[0]
    assert method == "POST" and path == "/fhir/DocumentReference"
    assert headers["If-None-Exist"] == "identifier=urn:scribe:note|note-1"
    assert list(ehr.resources) == ["urn:scribe:note|note-1"]
    assert pending_count(database) == 0


def test_failures_back_off_and_retry_until_delivered(database, ehr):
    ehr.fail_next = 2
    queue(database, signed("note-2"), now=NOW)
    with httpx.Client(timeout=5) as client:
        first = deliver_due(database, ehr.url, client, now=NOW)
        assert (first.delivered, first.failed) == (0, 1)
        assert deliver_due(database, ehr.url, client, now=NOW).failed == 0  # not due again yet
        with database.session() as session:
            message = session.scalars(select(OutboxMessage)).one()
            assert message.last_error == "HTTP 500" and message.next_attempt_at.replace(tzinfo=UTC) == NOW + timedelta(
                seconds=retry_delay(1)
            )
        assert deliver_due(database, ehr.url, client, now=NOW + timedelta(seconds=6)).failed == 1
        assert deliver_due(database, ehr.url, client, now=NOW + timedelta(seconds=60)).delivered == 1
    assert len(ehr.resources) == 1 and pending_count(database) == 0
    assert retry_delay(1) < retry_delay(2) < retry_delay(3) and retry_delay(50) == 3600


def test_an_unreachable_ehr_keeps_the_message(database):
    queue(database, signed("note-3"))
    with httpx.Client(timeout=1) as client:
        report = deliver_due(database, "http://127.0.0.1:9/fhir", client)
    assert report.failed == 1 and pending_count(database) == 1
    with database.session() as session:
        assert session.scalars(select(OutboxMessage)).one().last_error == "ConnectError"


def test_a_crash_after_sending_redelivers_without_a_second_copy(database, ehr):
    """The EHR stored the note but the node died before recording delivery: the retry finds it, no duplicate."""
    queue(database, signed("note-4"))
    with httpx.Client(timeout=5) as client:
        deliver_due(database, ehr.url, client)
        with database.session() as session, session.begin():  # the commit that never happened
            session.scalars(select(OutboxMessage)).one().delivered_at = None
        assert deliver_due(database, ehr.url, client).delivered == 1
    assert len(ehr.requests) == 2 and len(ehr.resources) == 1


def test_an_amendment_creates_the_new_note_and_supersedes_the_old(database, ehr):
    queue(database, signed("note-5"))
    queue(database, signed("note-6", relates_to=[("replaces", "note-5")]))
    queue(database, signed("note-5", status="amended", version=3), replace_existing=True)
    with httpx.Client(timeout=5) as client:
        assert deliver_due(database, ehr.url, client).delivered == 3
    assert [m for m, _, _ in ehr.requests] == ["POST", "POST", "PUT"]
    assert ehr.requests[2][1] == "/fhir/DocumentReference?identifier=urn:scribe:note|note-5"
    assert ehr.resources["urn:scribe:note|note-5"]["status"] == "superseded"
    assert ehr.resources["urn:scribe:note|note-6"]["relatesTo"][0]["target"]["reference"] == "DocumentReference/note-5"


def test_the_background_loop_delivers_what_is_queued_later(database, ehr):
    async def scenario() -> None:
        loop = asyncio.create_task(delivery_loop(database, ehr.url, interval_s=0.05))
        await asyncio.sleep(0.1)
        queue(database, signed("note-7"))
        for _ in range(100):
            if pending_count(database) == 0:
                break
            await asyncio.sleep(0.05)
        loop.cancel()

    asyncio.run(scenario())
    assert pending_count(database) == 0 and "urn:scribe:note|note-7" in ehr.resources
