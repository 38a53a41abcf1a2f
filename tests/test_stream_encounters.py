"""The websocket and the store: streamed encounters are encounters like any other (owner, transcript, audit),
and one connection at a time streams into an encounter across every node (a lease in the database)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.encounters import acquire_stream, release_node_streams
from scribe.store.models import AuditRecord, Encounter
from tests.accounts import bearer, enrol, token
from tests.conftest import SAMPLES
from tests.helpers.stream import connect, expect_error, sample_pcm, start, stream_all


@pytest.fixture
def api(database_target, whisper):
    settings, schema, _ = database_target
    with TestClient(create_app(settings, load_asr=False, database_schema=schema)) as client:
        client.app.state.asr.serve({"encounter": whisper, "dictation": whisper})
        enrol(client.app.state.database, token("dr-a"), token("dr-b"))
        yield client


def test_a_streamed_encounter_is_stored_like_any_other(api: TestClient):
    bundle = (SAMPLES / "cardiology_followup.bundle.json").read_bytes()
    created = api.post("/v1/encounters", json={"patient": {"id": "pt-1001"}, "mode": "dictation"}, headers=bearer())
    encounter = created.json()["id"]
    assert (
        api.post(
            f"/v1/encounters/{encounter}/records",
            content=bundle,
            headers={**bearer(), "Content-Type": "application/fhir+json"},
        ).status_code
        == 201
    )
    with connect(api, encounter) as ws:
        start(ws)
        messages = stream_all(ws, sample_pcm())
    assert messages[-1]["type"] == "done"
    stored = api.get(f"/v1/encounters/{encounter}/transcript", headers=bearer())
    assert stored.status_code == 200 and stored.json()["text"] == messages[-1]["transcript"]["text"]
    assert api.get(f"/v1/encounters/{encounter}", headers=bearer()).json()["status"] == "transcribed"
    assert api.post(f"/v1/encounters/{encounter}/note", headers=bearer()).status_code == 201
    with api.app.state.database.session() as session:
        streams = session.scalars(select(AuditRecord).where(AuditRecord.action == "stream")).all()
        row = session.get(Encounter, encounter)
    assert [(r.actor, r.patient_id, r.outcome) for r in streams] == [("dr-a", "pt-1001", "0")]
    assert row.stream_holder is None  # the lease went with the connection


def test_a_new_id_becomes_the_clinicians_encounter_and_others_are_refused(api: TestClient):
    with connect(api, "enc-new", "dr-a") as ws:
        start(ws)
        ws.send_bytes(b"\x00" * 3200)
        assert ws.receive_json()["type"] == "ack"
    listed = api.get("/v1/encounters", headers=bearer("dr-a")).json()
    assert [e["id"] for e in listed["encounters"]] == ["enc-new"]
    with connect(api, "enc-new", "dr-b") as ws:
        expect_error(ws, "forbidden", 4403)
    rest = api.post("/v1/encounters", json={"id": "enc-rest"}, headers=bearer("dr-a"))
    assert rest.status_code == 201
    with connect(api, "enc-rest", "dr-b") as ws:
        expect_error(ws, "forbidden", 4403)
    with api.app.state.database.session() as session:
        refused = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "stream", AuditRecord.outcome == "4")
        ).all()
    assert {(r.actor, r.resource_id) for r in refused} == {("dr-b", "enc-new"), ("dr-b", "enc-rest")}


def test_websocket_auth_failures_are_audited(api: TestClient):
    with connect(api, "enc-x", headers={"Authorization": "Bearer forged"}) as ws:
        expect_error(ws, "unauthorized", 4401)
    with api.app.state.database.session() as session:
        [row] = session.scalars(select(AuditRecord).where(AuditRecord.action == "auth-failure")).all()
    assert row.path == "/v1/encounters/{encounter_id}/stream" and row.resource_id == "enc-x"
    assert row.status_code == 401


def test_the_lease_is_one_connection_across_nodes(api: TestClient):
    """Another node's live lease refuses this node; a restarted node voids the leases it held."""
    assert api.post("/v1/encounters", json={"id": "enc-lease"}, headers=bearer()).status_code == 201
    with api.app.state.database.session() as session, session.begin():
        assert acquire_stream(session, "enc-lease", "node-b/conn-1", ttl_s=30)
        assert not acquire_stream(session, "enc-lease", "node-c/conn-2", ttl_s=30)
        assert acquire_stream(session, "enc-lease", "node-b/conn-1", ttl_s=30)  # renewal by the holder
    with connect(api, "enc-lease") as ws:
        expect_error(ws, "already_streaming", 4409)
    with api.app.state.database.session() as session, session.begin():
        assert release_node_streams(session, "node-b") == 1  # node-b restarted
    with connect(api, "enc-lease") as ws:
        assert start(ws)["type"] == "ready"


def test_the_websocket_refuses_a_token_whose_subject_is_unknown_deleted_or_disabled(api: TestClient):
    """The bearer path of the websocket asks what REST asks: the subject must exist and be active, at every connect."""
    from scribe.auth.users import set_user_active
    from scribe.store.models import User

    with connect(api, "enc-who", "dr-nobody") as ws:
        expect_error(ws, "unauthorized", 4401)
    enrol(api.app.state.database, token("dr-gone"))
    with connect(api, "enc-who", "dr-gone") as ws:
        assert start(ws)["type"] == "ready"
    with api.app.state.database.session() as session, session.begin():
        session.delete(session.get(User, "dr-gone"))
    with connect(api, "enc-who", "dr-gone") as ws:
        expect_error(ws, "unauthorized", 4401)
    set_user_active(api.app.state.database, "dr-b", False)
    with connect(api, "enc-who-b", "dr-b") as ws:
        expect_error(ws, "unauthorized", 4401)
    with api.app.state.database.session() as session:
        refused = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "auth-failure").order_by(AuditRecord.id)
        ).all()
        assert session.get(Encounter, "enc-who-b") is None  # nothing was created for the refused caller
    assert [(r.actor, r.status_code, r.resource_id) for r in refused] == [
        ("dr-nobody", 401, "enc-who"),
        ("dr-gone", 401, "enc-who"),
        ("dr-b", 401, "enc-who-b"),
    ]


def test_a_ticket_of_a_user_disabled_since_is_refused(api: TestClient):
    from scribe.auth.users import set_user_active

    ticket = api.post("/v1/stream-tickets", json={"encounter_id": "enc-tk"}, headers=bearer("dr-b")).json()["ticket"]
    set_user_active(api.app.state.database, "dr-b", False)
    with connect(api, "enc-tk", headers={}, query=f"?ticket={ticket}") as ws:
        expect_error(ws, "unauthorized", 4401)


def test_a_stream_ticket_is_issued_only_for_an_encounter_the_caller_may_stream_into(api: TestClient):
    """Their own encounter, or an id nobody has taken (it becomes theirs on connect); never another clinician's,
    even though the socket would refuse it: the refusal is a 403 OperationOutcome, audited, and no ticket exists."""
    from scribe.store.models import StreamTicket

    created = api.post("/v1/encounters", json={"id": "enc-of-a", "patient": {"id": "pt-5"}}, headers=bearer("dr-a"))
    assert created.status_code == 201
    refused = api.post("/v1/stream-tickets", json={"encounter_id": "enc-of-a"}, headers=bearer("dr-b"))
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    assert refused.json()["issue"][0]["code"] == "forbidden" and "ticket" not in refused.json()
    own = api.post("/v1/stream-tickets", json={"encounter_id": "enc-of-a"}, headers=bearer("dr-a"))
    assert own.status_code == 200
    fresh = api.post("/v1/stream-tickets", json={"encounter_id": "enc-of-b"}, headers=bearer("dr-b"))
    assert fresh.status_code == 200
    with connect(api, "enc-of-b", headers={}, query=f"?ticket={fresh.json()['ticket']}") as ws:
        assert start(ws)["type"] == "ready"
    assert api.get("/v1/encounters/enc-of-b", headers=bearer("dr-b")).json()["clinician"] == "dr-b"
    theirs = api.post("/v1/stream-tickets", json={"encounter_id": "enc-of-b"}, headers=bearer("dr-a"))
    assert theirs.status_code == 403
    with api.app.state.database.session() as session:
        tickets = session.scalars(select(StreamTicket.subject).order_by(StreamTicket.subject)).all()
        audited = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "token").order_by(AuditRecord.id)
        ).all()
    assert tickets == ["dr-a", "dr-b"]
    assert [(r.actor, r.resource_id, r.patient_id, r.status_code) for r in audited] == [
        ("dr-b", "enc-of-a", None, 403),
        ("dr-a", "enc-of-a", "pt-5", 200),
        ("dr-b", "enc-of-b", None, 200),
        ("dr-a", "enc-of-b", None, 403),
    ]
