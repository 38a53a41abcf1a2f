"""The service's public and authenticated basics: health, errors as OperationOutcome, stream tickets."""

import pytest
from fastapi.testclient import TestClient

from scribe.api.app import create_app
from scribe.auth.tokens import create_token
from scribe.config import Settings
from tests.accounts import KEY, enrol, token


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key=KEY)
    with TestClient(create_app(settings, load_asr=False)) as test_client:
        enrol(test_client.app.state.database, token(), token("dr-a", ("system/DocumentReference.rs",)))
        yield test_client


def test_healthz_is_public(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["ready"] is False and body["engines"]["asr"] is None
    assert "--no-asr" in body["reason"] and body["engines"]["asr_modes"] == {"encounter": None, "dictation": None}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer " + create_token(b"x" * 40, "dr-a")},
    ],
)
def test_ticket_route_needs_a_valid_token(client, headers):
    response = client.post("/v1/stream-tickets", json={"encounter_id": "enc-1"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_ticket_route_needs_the_scope(client):
    response = client.post(
        "/v1/stream-tickets",
        json={"encounter_id": "enc-1"},
        headers={"Authorization": f"Bearer {token('dr-a', ('system/DocumentReference.rs',))}"},
    )
    assert response.status_code == 403 and response.json()["issue"][0]["code"] == "forbidden"


def test_ticket_issued(client):
    response = client.post(
        "/v1/stream-tickets", json={"encounter_id": "enc-1"}, headers={"Authorization": f"Bearer {token()}"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] <= 60 and len(body["ticket"]) >= 32


@pytest.mark.parametrize("body", [{"encounter_id": "../etc"}, {}, {"encounter_id": "x" * 65}])
def test_bad_ticket_requests_are_422(client, body):
    response = client.post("/v1/stream-tickets", json=body, headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 422 and response.json()["resourceType"] == "OperationOutcome"


def test_unknown_route_is_an_operation_outcome(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"


def test_metrics_count_requests_by_route_template_without_ids(client):
    client.get("/healthz")
    client.get("/v1/encounters/secret-encounter-id", headers={"Authorization": f"Bearer {token()}"})
    body = client.get("/metrics")
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/plain")
    text = body.text
    assert 'scribe_http_requests_total{method="GET",route="/healthz",status="200"} 1' in text
    assert 'route="/v1/encounters/{id}",status="404"' in text
    assert "secret-encounter-id" not in text
    assert "scribe_asr_ready 0" in text and "scribe_active_streams 0" in text
