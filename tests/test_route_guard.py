"""Every route and the websocket demand a credential, except the public ones docs/interfaces.md lists.

Routes are read from the app itself, so a route added later without auth fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient

from scribe.api.app import create_app
from scribe.auth.tokens import create_token
from scribe.config import Settings
from tests.accounts import KEY, enrol, token

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/fhir/metadata"),
    ("GET", "/.well-known/smart-configuration"),
    ("POST", "/auth/token"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/session"),
    ("DELETE", "/v1/session"),
    ("GET", "/"),
    ("GET", "/sign-in"),
    # page shells of the web app: signed out, each is the sign-in page; none carries patient data
    # (tests/test_web.py), which the pages read through the guarded API
    ("GET", "/encounters/new"),
    ("GET", "/encounters/{encounter_id}"),
    ("GET", "/notes/{note_id}"),
}

SESSION_ONLY = {("GET", "/v1/session")}  # answers about the browser's cookie session, whatever the bearer token


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("guard"), secret_key=KEY)
    with TestClient(create_app(settings, load_asr=False)) as test_client:
        yield test_client


def all_routes(app) -> list[tuple[type, str, set[str]]]:
    """(route class, full path, methods) of every route, also those inside included routers."""
    out = []
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):  # FastAPI >= 0.160 keeps included routers lazily
            out += [
                (type(c.original_route), c.path or c.original_route.path, set(getattr(c, "methods", None) or ()))
                for c in route.effective_route_contexts()
            ]
        else:
            out.append((type(route), route.path, set(getattr(route, "methods", None) or ())))
    return out


def guarded_routes(app) -> list[tuple[str, str]]:
    out = []
    for kind, path, methods in all_routes(app):
        if not issubclass(kind, APIRoute):  # scribe.api.bodies.BoundedRoute too
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            if (method, path) in PUBLIC or path.startswith("/fhir/{path"):
                continue
            out.append((method, re.sub(r"\{[^}]+\}", "x1", path)))
    return out


def test_every_non_public_route_needs_a_token_and_the_scope(client):
    routes = guarded_routes(client.app)
    families = {path.split("/")[2] for _, path in routes if path.startswith(("/v1/", "/fhir/"))}
    assert {
        "encounters",
        "notes",
        "stream-tickets",
        "DocumentReference",
        "Binary",
        "Provenance",
        "AuditEvent",
    } <= families
    unscoped = {"Authorization": f"Bearer {token('nobody', ('patient/Observation.r',))}"}
    enrol(client.app.state.database, unscoped)  # an account that exists, with a scope no route accepts
    for method, path in routes:
        anonymous = client.request(method, path)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        assert anonymous.json()["resourceType"] == "OperationOutcome"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        forged = client.request(method, path, headers={"Authorization": "Bearer " + create_token(b"x" * 40, "dr-a")})
        assert forged.status_code == 401, (method, path)
        if (method, path) in SESSION_ONLY:
            continue
        refused = client.request(method, path, headers=unscoped)
        assert refused.status_code == 403, (method, path, refused.status_code, refused.text)


def test_the_websocket_needs_a_credential_too(client):
    routes = [path for kind, path, _ in all_routes(client.app) if kind is APIWebSocketRoute]
    assert routes == ["/v1/encounters/{encounter_id}/stream"]
    with client.websocket_connect("/v1/encounters/enc-guard/stream") as socket:
        message = socket.receive_json()
        assert message["type"] == "error" and message["code"] == "unauthorized"


def test_public_routes_answer_without_a_token(client):
    for path in ("/healthz", "/fhir/metadata", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_the_public_routes_are_the_ones_the_interfaces_document_lists():
    listed = (Path(__file__).resolve().parent.parent / "docs" / "interfaces.md").read_text()
    assert [route for route in sorted(PUBLIC) if f"`{route[0]} {route[1]}`" not in listed] == []
