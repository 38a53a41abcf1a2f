"""Principal resolution (scribe/api/auth.py) and the central auth-failure audit, against the real app.

The probe routes added here depend on nothing but the auth dependencies, so what they answer is
exactly what authentication decided. The other auth tests import `build_app` and `audit_rows`.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import select

from scribe.api.app import create_app
from scribe.api.auth import current_principal, require_admin, require_scope
from scribe.auth.smart import register_client, set_client_active
from scribe.auth.tokens import Principal, create_token
from scribe.auth.users import save_user, set_user_active
from scribe.config import Settings
from scribe.store.models import AuditRecord, Client, User
from tests.accounts import KEY, bearer, enrol
from tests.test_auth_keys import jwks, rsa_key


def build_app(settings: Settings, schema: str | None = None) -> FastAPI:
    """The real app plus probe routes that answer who the caller is."""
    app = create_app(settings, load_asr=False, database_schema=schema)

    def who(principal: Principal) -> dict:
        return {"subject": principal.subject, "scopes": list(principal.scopes), "kind": principal.kind}

    @app.api_route("/probe/{item}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def probe(item: str, principal: Principal = Depends(current_principal)) -> dict:
        return who(principal)

    @app.get("/probe-admin")
    def probe_admin(principal: Principal = Depends(require_admin)) -> dict:
        return who(principal)

    @app.get("/probe-documents")
    def probe_documents(principal: Principal = Depends(require_scope("system/DocumentReference.rs"))) -> dict:
        return who(principal)

    return app


def audit_rows(app: FastAPI, action: str | None = None) -> list[AuditRecord]:
    with app.state.database.session() as session:
        query = select(AuditRecord).order_by(AuditRecord.id)
        return list(session.scalars(query.where(AuditRecord.action == action) if action else query))


@pytest.fixture
def app(tmp_path) -> FastAPI:
    return build_app(Settings(data_dir=tmp_path, secret_key=KEY))


def test_scribe_token_is_accepted(app, client):
    enrol(app.state.database, headers := bearer())
    assert client.get("/probe/x", headers=headers).json() == {"subject": "dr-a", "scopes": ["user/*.*"], "kind": "user"}


def test_no_credentials_is_401_and_audited_with_the_route_template_only(app, client):
    response = client.get("/probe/pt-1001?patient=pt-1001&name=Jane")
    assert response.status_code == 401 and response.json()["resourceType"] == "OperationOutcome"
    [row] = audit_rows(app, "auth-failure")
    assert (row.actor, row.actor_kind, row.method, row.path, row.status_code, row.outcome) == (
        None,
        "anonymous",
        "GET",
        "/probe/{item}",
        401,
        "4",
    )
    assert "pt-1001" not in (row.detail or "") and "Jane" not in (row.detail or "")


def test_a_refused_token_is_audited_under_the_subject_it_claims(app, client):
    expired = create_token(KEY.encode(), "dr-a", ttl_s=1)
    forged = create_token(b"x" * 40, "ehr-client", ("system/DocumentReference.rs",), 300)
    time.sleep(1.1)
    assert client.post("/probe/x", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert client.get("/probe/x", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.get("/probe/x", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    rows = audit_rows(app, "auth-failure")
    assert [(r.actor, r.actor_kind, r.method) for r in rows] == [
        ("dr-a", "user", "POST"),
        ("ehr-client", "system", "GET"),
        (None, "anonymous", "GET"),
    ]
    assert rows[0].detail == "token expired" and "Signature" in rows[1].detail


def test_an_invented_subject_is_not_copied_into_the_audit(app, client):
    token = jwt.encode({"sub": "x" * 300, "iss": "scribe", "exp": int(time.time()) + 60}, b"y" * 40, "HS256")
    assert client.get("/probe/x", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert audit_rows(app, "auth-failure")[0].actor is None


def test_an_audit_failure_still_answers_401(app, client, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("database is gone")

    monkeypatch.setattr("scribe.audit.record", broken)
    assert client.get("/probe/x").status_code == 401


def test_disabled_users_and_clients_lose_access_at_once(app, client):
    database = app.state.database
    save_user(database, "dr-a", None)
    client_id = register_client(database, "ehr", json.dumps(jwks(rsa_key()))).client_id
    assert client.get("/probe/x", headers=bearer("dr-a")).status_code == 200
    assert client.get("/probe/x", headers=bearer(client_id, ("system/DocumentReference.rs",))).status_code == 200
    set_user_active(database, "dr-a", False)
    set_client_active(database, client_id, False)
    response = client.get("/probe/x", headers=bearer("dr-a"))
    assert response.status_code == 401 and "disabled" in response.json()["issue"][0]["diagnostics"]
    assert client.get("/probe/x", headers=bearer(client_id, ("system/DocumentReference.rs",))).status_code == 401
    assert [r.actor for r in audit_rows(app, "auth-failure")] == ["dr-a", client_id]


def test_a_token_naming_no_user_or_client_is_refused_and_audited(app, client):
    """scribe's own signature is not enough: the subject must exist here (`scribe token create --sub anyone` and a
    leaked signing key could otherwise mint a working identity)."""
    for headers, actor, kind in (
        (bearer("nobody"), "nobody", "user"),
        (bearer("no-client", ("system/DocumentReference.rs",)), "no-client", "system"),
    ):
        response = client.get("/probe/x", headers=headers)
        assert response.status_code == 401 and response.json()["resourceType"] == "OperationOutcome"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["issue"][0]["diagnostics"] == f"unknown {kind if kind == 'user' else 'client'}"
        row = audit_rows(app, "auth-failure")[-1]
        assert (row.actor, row.actor_kind, row.status_code, row.path) == (actor, kind, 401, "/probe/{item}")
    system_with_a_users_name = bearer("dr-a", ("system/DocumentReference.rs",))
    enrol(app.state.database, bearer("dr-a"))  # a user dr-a is not a client dr-a
    assert client.get("/probe/x", headers=system_with_a_users_name).status_code == 401


def test_deleting_a_user_or_client_ends_its_tokens_at_once(app, client):
    database = app.state.database
    user, system = bearer("dr-gone"), bearer("ehr-gone", ("system/DocumentReference.rs",))
    enrol(database, user, system)
    assert client.get("/probe/x", headers=user).status_code == 200
    assert client.get("/probe/x", headers=system).status_code == 200
    with database.session() as session, session.begin():
        session.delete(session.get(User, "dr-gone"))
        session.delete(session.get(Client, "ehr-gone"))
    assert client.get("/probe/x", headers=user).status_code == 401
    assert client.get("/probe/x", headers=system).status_code == 401
    assert [(r.actor, r.actor_kind) for r in audit_rows(app, "auth-failure")] == [
        ("dr-gone", "user"),
        ("ehr-gone", "system"),
    ]


def test_admin_access_needs_the_admin_role_or_the_audit_scope(app, client):
    database = app.state.database
    save_user(database, "boss", None, role="admin")
    save_user(database, "dr-a", None)
    enrol(
        database,
        bearer("auditor", ("system/AuditEvent.rs",)),
        bearer("ehr", ("system/DocumentReference.rs",)),
        bearer("boss", ("system/DocumentReference.rs",)),
    )  # a client whose id is an administrator's name
    assert client.get("/probe-admin", headers=bearer("boss")).status_code == 200
    assert client.get("/probe-admin", headers=bearer("dr-a")).status_code == 403
    assert client.get("/probe-admin", headers=bearer("nobody")).status_code == 401  # no such user at all
    assert client.get("/probe-admin", headers=bearer("auditor", ("system/AuditEvent.rs",))).status_code == 200
    assert client.get("/probe-admin", headers=bearer("boss", ("system/DocumentReference.rs",))).status_code == 403
    denied = client.get("/probe-admin", headers=bearer("ehr", ("system/DocumentReference.rs",)))
    assert denied.status_code == 403 and denied.json()["issue"][0]["code"] == "forbidden"
    set_user_active(database, "boss", False)
    assert client.get("/probe-admin", headers=bearer("boss")).status_code == 401


def test_missing_scope_is_403_not_401(app, client):
    enrol(app.state.database, bearer(), bearer("ehr", ("system/DocumentReference.rs",)))
    assert client.get("/probe-documents", headers=bearer()).status_code == 403
    assert client.get("/probe-documents", headers=bearer("ehr", ("system/DocumentReference.rs",))).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"username": "dr-a", "password": "p"}}, 415),
        (
            {
                "content": b"username=a&username=b&password=x",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            422,
        ),
        (
            {"content": b"username=%ff&password=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            422,
        ),
        (
            {
                "content": b"username=a&password=" + b"x" * 70_000,
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
        ({"data": {"username": "dr-a"}}, 422),
    ],
)
def test_malformed_credential_forms_are_clear_errors(client, kwargs, status):
    response = client.post("/v1/session", **kwargs)
    assert response.status_code == status and response.json()["resourceType"] == "OperationOutcome"


def test_a_plain_http_401_is_audited_too(app, client):
    from fastapi import HTTPException

    @app.get("/probe-http-401/{thing}")
    def refuse(thing: str) -> None:
        raise HTTPException(status_code=401, detail="come back with a token")

    response = client.get("/probe-http-401/abc?q=secret")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    [row] = audit_rows(app, "auth-failure")
    assert (row.actor_kind, row.path, row.detail) == ("anonymous", "/probe-http-401/{thing}", "come back with a token")
