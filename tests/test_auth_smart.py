"""SMART Backend Services: discovery, the token endpoint, assertion checks, replay across nodes, scopes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scribe.auth.smart import (
    ASSERTION_TYPE,
    DRAFTS_SCOPE,
    grant_scopes,
    list_clients,
    parse_scope,
    register_client,
    set_client_active,
)
from scribe.auth.tokens import verify_token
from scribe.config import Settings
from scribe.errors import BadInputError
from scribe.store.models import UsedAssertion
from tests.accounts import KEY
from tests.test_auth_app import audit_rows, build_app
from tests.test_auth_keys import SigningKey, ec_key, jwks, rsa_key, unsigned_token

RSA, EC = rsa_key("rsa-1", "RS384"), ec_key("ec-1", "ES384")
TOKEN_URL = "http://testserver/auth/token"
ALLOWED = ("system/DocumentReference.rs", "system/AuditEvent.rs")


def assertion(key: SigningKey, client_id: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    return key.sign({k: v for k, v in claims.items() if v is not None})


def token_request(signed: str, scope: str = "system/DocumentReference.rs", **overrides) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        "scope": scope,
        **overrides,
    }
    return {k: v for k, v in form.items() if v is not None}


@pytest.fixture
def app(tmp_path):
    return build_app(Settings(data_dir=tmp_path, secret_key=KEY))


@pytest.fixture
def client_id(app, client) -> str:
    return register_client(app.state.database, "EHR", json.dumps(jwks(RSA, EC)), ALLOWED).client_id


def error_of(response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_description"} and body["error_description"]
    return body["error"]


def test_smart_configuration_is_public_and_complete(client):
    response = client.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.json()
    assert body["token_endpoint"] == TOKEN_URL
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert body["grant_types_supported"] == ["client_credentials"]
    assert "system/DocumentReference.rs" in body["scopes_supported"]
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(body["capabilities"])


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS384", "ES384"])
def test_a_good_assertion_buys_a_short_token_that_reads_a_protected_route(app, client, client_id, key):
    before = time.time()
    response = client.post("/auth/token", data=token_request(assertion(key, client_id)))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer" and body["scope"] == "system/DocumentReference.rs"
    assert 0 < body["expires_in"] <= 300
    principal = verify_token(KEY.encode(), body["access_token"])
    assert principal.subject == client_id and principal.kind == "system"
    assert principal.expires_at <= before + 301
    claims = jwt.decode(body["access_token"], KEY.encode(), algorithms=["HS256"], issuer="scribe")
    assert claims["exp"] - claims["iat"] <= 300
    read = client.get("/probe-documents", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200 and read.json()["subject"] == client_id
    denied = client.get("/probe-admin", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert denied.status_code == 403  # DocumentReference only: no audit access
    [row] = audit_rows(app, "token")
    assert (row.actor, row.actor_kind, row.path, row.detail) == (
        client_id,
        "system",
        "/auth/token",
        "granted system/DocumentReference.rs",
    )


def test_drafts_are_a_scope_of_their_own_granted_only_to_clients_allowed_it(app, client, client_id):
    """The drafts scope is offered in discovery, but a client registered for DocumentReference alone never gets it."""
    assert DRAFTS_SCOPE in client.get("/.well-known/smart-configuration").json()["scopes_supported"]
    wanted = f"system/DocumentReference.rs {DRAFTS_SCOPE}"
    plain = client.post("/auth/token", data=token_request(assertion(RSA, client_id), wanted))
    assert plain.status_code == 200 and plain.json()["scope"] == "system/DocumentReference.rs"
    allowed = register_client(
        app.state.database, "Draft reader", json.dumps(jwks(EC)), ("system/DocumentReference.rs", DRAFTS_SCOPE)
    ).client_id
    granted = client.post("/auth/token", data=token_request(assertion(EC, allowed), wanted)).json()
    assert granted["scope"].split() == sorted(["system/DocumentReference.rs", DRAFTS_SCOPE])


def test_the_audit_scope_opens_admin_routes(client, client_id):
    body = client.post("/auth/token", data=token_request(assertion(RSA, client_id), "system/AuditEvent.read")).json()
    assert body["scope"] == "system/AuditEvent.rs"
    assert client.get("/probe-admin", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200


def test_a_replayed_assertion_is_refused(app, client, client_id):
    signed = assertion(RSA, client_id)
    assert client.post("/auth/token", data=token_request(signed)).status_code == 200
    replay = client.post("/auth/token", data=token_request(signed))
    assert replay.status_code == 400 and error_of(replay) == "invalid_grant"
    assert "replayed" in replay.json()["error_description"]
    failure = audit_rows(app, "auth-failure")[-1]
    assert (failure.actor, failure.actor_kind, failure.status_code, failure.path) == (
        client_id,
        "system",
        400,
        "/auth/token",
    )


def test_the_same_jti_from_another_client_is_not_a_replay(app, client, client_id):
    other = register_client(app.state.database, "Other EHR", json.dumps(jwks(EC)), ALLOWED).client_id
    assert client.post("/auth/token", data=token_request(assertion(RSA, client_id, jti="shared"))).status_code == 200
    assert client.post("/auth/token", data=token_request(assertion(EC, other, jti="shared"))).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error", "status"),
    [
        ({"exp": int(time.time()) + 600}, "invalid_grant", 400),
        ({"exp": 10**20}, "invalid_grant", 400),
        ({"exp": int(time.time()) - 60}, "invalid_grant", 400),
        ({"exp": None}, "invalid_grant", 400),
        ({"aud": "https://elsewhere.example.org/auth/token"}, "invalid_grant", 400),
        ({"aud": None}, "invalid_grant", 400),
        ({"jti": None}, "invalid_grant", 400),
        ({"jti": "j" * 129}, "invalid_grant", 400),
        ({"sub": "someone-else"}, "invalid_client", 401),
        ({"iss": "unknown-client", "sub": "unknown-client"}, "invalid_client", 401),
    ],
    ids=[
        "exp-10-min",
        "exp-far-future",
        "expired",
        "no-exp",
        "wrong-aud",
        "no-aud",
        "no-jti",
        "long-jti",
        "sub-not-iss",
        "unknown-client",
    ],
)
def test_bad_assertion_claims_are_refused(app, client, client_id, overrides, error, status):
    response = client.post("/auth/token", data=token_request(assertion(RSA, client_id, **overrides)))
    assert response.status_code == status and error_of(response) == error
    assert audit_rows(app, "token") == [] and audit_rows(app, "auth-failure")[-1].status_code == status


def test_exp_of_five_minutes_is_accepted(client, client_id):
    signed = assertion(EC, client_id, exp=int(time.time()) + 300)
    assert client.post("/auth/token", data=token_request(signed)).status_code == 200


@pytest.mark.parametrize(
    "make",
    [
        lambda cid: rsa_key("rsa-1", "RS384").sign(
            {"iss": cid, "sub": cid, "aud": TOKEN_URL, "jti": "x", "exp": int(time.time()) + 60}
        ),  # same kid, unregistered key
        lambda cid: assertion(rsa_key("rsa-9", "RS384"), cid),  # kid not registered
        lambda cid: assertion(RSA, cid)[:-6] + "AAAAAA",  # tampered signature
        lambda cid: assertion(rsa_key("rsa-1", "RS256"), cid),  # algorithm not offered
        lambda cid: EC.sign(
            {"iss": cid, "sub": cid, "aud": TOKEN_URL, "jti": "x", "exp": int(time.time()) + 60}, kid="rsa-1"
        ),  # ES384 with an RSA key's kid
        lambda cid: jwt.encode(
            {"iss": cid, "sub": cid, "aud": TOKEN_URL, "jti": "x", "exp": int(time.time()) + 60},
            b"k" * 32,
            algorithm="HS256",
            headers={"kid": "rsa-1"},
        ),
        lambda cid: unsigned_token(
            {"iss": cid, "sub": cid, "aud": TOKEN_URL, "jti": "x", "exp": int(time.time()) + 60}
        ),
        lambda cid: "not-a-jwt",
    ],
    ids=["other-key", "unknown-kid", "tampered", "RS256", "alg-key-mismatch", "HS256", "none", "garbage"],
)
def test_wrong_keys_and_algorithms_are_invalid_client(client, client_id, make):
    response = client.post("/auth/token", data=token_request(make(client_id)))
    assert response.status_code == 401 and error_of(response) == "invalid_client"


def test_a_disabled_client_gets_no_token(app, client, client_id):
    set_client_active(app.state.database, client_id, False)
    response = client.post("/auth/token", data=token_request(assertion(RSA, client_id)))
    assert response.status_code == 401 and error_of(response) == "invalid_client"


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x85", "\n", "\t", "\u202e", "\u2067"])
def test_a_client_name_that_is_not_clean_text_is_refused_and_nothing_is_registered(app, client, capsys, tmp_path, char):
    """Over the domain function (what any caller uses) and `scribe clients add` (exit 3, nothing on stdout)."""
    from scribe.cli import run

    keys = json.dumps(jwks(RSA))
    with pytest.raises(BadInputError, match=rf"^client name: contains U\+{ord(char):04X} "):
        register_client(app.state.database, f"Epic{char}prod", keys)
    assert list_clients(app.state.database) == []
    key_file = tmp_path / "jwks.json"
    key_file.write_text(keys)
    cli_data = ["--data-dir", str(tmp_path / "cli")]
    code, (out, err) = (
        run(["clients", "add", f"Epic{char}prod", "--jwks", str(key_file), *cli_data]),
        capsys.readouterr(),
    )
    assert code == 3 and out == "" and f"client name: contains U+{ord(char):04X}" in err and "Traceback" not in err
    assert run(["clients", "list", *cli_data]) == 0 and capsys.readouterr().out == ""
    assert register_client(app.state.database, "Epic prod – Zoë", keys).name == "Epic prod – Zoë"


def test_client_id_parameter_must_match(client, client_id):
    response = client.post("/auth/token", data=token_request(assertion(RSA, client_id), client_id="other"))
    assert response.status_code == 401 and error_of(response) == "invalid_client"
    assert (
        client.post("/auth/token", data=token_request(assertion(RSA, client_id), client_id=client_id)).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("system/DocumentReference.read", "system/DocumentReference.rs"),
        ("system/DocumentReference.r system/Patient.rs user/*.* openid", "system/DocumentReference.r"),
        ("system/*.rs", "system/AuditEvent.rs system/DocumentReference.rs"),
        ("system/DocumentReference.cruds", "system/DocumentReference.rs"),
    ],
)
def test_granted_scopes_are_requested_intersected_with_allowed(client, client_id, requested, granted):
    response = client.post("/auth/token", data=token_request(assertion(RSA, client_id), requested))
    assert response.status_code == 200 and response.json()["scope"] == granted
    assert verify_token(KEY.encode(), response.json()["access_token"]).scopes == tuple(granted.split())


@pytest.mark.parametrize("requested", ["system/Patient.rs", "system/DocumentReference.cud", "user/*.*", "nonsense"])
def test_nothing_grantable_is_invalid_scope(client, client_id, requested):
    signed = assertion(RSA, client_id)
    response = client.post("/auth/token", data=token_request(signed, requested))
    assert response.status_code == 400 and error_of(response) == "invalid_scope"
    assert client.post("/auth/token", data=token_request(signed)).status_code == 200  # the refusal did not spend it


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
        ({"client_assertion_type": "urn:other"}, "invalid_request"),
        ({"client_assertion": None}, "invalid_request"),
        ({"scope": None}, "invalid_request"),
        ({"scope": "  "}, "invalid_request"),
    ],
)
def test_malformed_token_requests(client, client_id, form, error):
    response = client.post("/auth/token", data=token_request(assertion(RSA, client_id), **form))
    assert response.status_code == 400 and error_of(response) == error


def test_a_non_form_body_is_invalid_request(client, client_id):
    response = client.post("/auth/token", json=token_request(assertion(RSA, client_id)))
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_behind_a_proxy_the_public_url_is_the_audience(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key=KEY, public_url="https://scribe.example.org/")
    app = build_app(settings)
    with TestClient(app) as client:
        cid = register_client(app.state.database, "EHR", json.dumps(jwks(RSA)), ALLOWED).client_id
        assert (
            client.get("/.well-known/smart-configuration").json()["token_endpoint"]
            == "https://scribe.example.org/auth/token"
        )
        wrong = client.post("/auth/token", data=token_request(assertion(RSA, cid)))
        assert wrong.status_code == 400 and error_of(wrong) == "invalid_grant"
        good = client.post(
            "/auth/token", data=token_request(assertion(RSA, cid, aud="https://scribe.example.org/auth/token"))
        )
        assert good.status_code == 200
        token = good.json()["access_token"]
        assert verify_token(KEY.encode(), token, audience="https://scribe.example.org/").subject == cid
        assert client.get("/probe-documents", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_failed_token_requests_are_throttled_per_address(app, client, client_id):
    """A client address whose token requests failed ADDRESS_LIMIT times in the window gets 429, even with a good
    assertion; another address is served."""
    from scribe.auth import throttle

    attacker = TestClient(app, client=("203.0.113.9", 50000))
    for _ in range(throttle.ADDRESS_LIMIT):
        assert attacker.post("/auth/token", data=token_request("not-a-jwt")).status_code == 401
    refused = attacker.post("/auth/token", data=token_request(assertion(RSA, client_id)))
    assert refused.status_code == 429 and refused.json()["issue"][0]["code"] == "throttled"
    assert audit_rows(app, "token") == [] and audit_rows(app, "auth-failure")[-1].status_code == 429
    assert client.post("/auth/token", data=token_request(assertion(RSA, client_id))).status_code == 200


def test_expired_used_assertions_are_purged(app, client, client_id):
    with app.state.database.session() as session, session.begin():
        session.add(
            UsedAssertion(
                jti=f"{client_id}/old", client_id=client_id, expires_at=datetime.now(UTC) - timedelta(minutes=1)
            )
        )
    assert client.post("/auth/token", data=token_request(assertion(RSA, client_id))).status_code == 200
    with app.state.database.session() as session:
        kept = session.scalars(select(UsedAssertion.jti)).all()
    assert len(kept) == 1 and not kept[0].endswith("/old")


# ------------------------------------------------------------------------------------------ several nodes


def test_a_replay_is_refused_on_another_node_and_under_a_race(database_target):
    """Two apps on one database (SQLite file or a PostgreSQL schema) share the replay cache: the primary key."""
    settings, schema, _ = database_target
    first, second = build_app(settings, schema), build_app(settings, schema)
    with TestClient(first) as node_a, TestClient(second) as node_b:
        cid = register_client(first.state.database, "EHR", json.dumps(jwks(RSA, EC)), ALLOWED).client_id
        signed = assertion(RSA, cid, aud="http://testserver/auth/token")
        assert node_a.post("/auth/token", data=token_request(signed)).status_code == 200
        replay = node_b.post("/auth/token", data=token_request(signed))
        assert replay.status_code == 400 and error_of(replay) == "invalid_grant"

        raced = assertion(EC, cid)
        results: list[int] = []
        lock = threading.Lock()

        def attempt(node: TestClient) -> None:
            status = node.post("/auth/token", data=token_request(raced)).status_code
            with lock:
                results.append(status)

        threads = [threading.Thread(target=attempt, args=(node,)) for node in (node_a, node_b) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200] + [400] * 5


# ------------------------------------------------------------------------------------------ scope algebra


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("system/DocumentReference.rs", "system/DocumentReference.rs"),
        ("system/DocumentReference.read", "system/DocumentReference.rs"),
        ("system/Binary.write", "system/Binary.cud"),
        ("system/*.*", "system/*.cruds"),
        ("system/Note.sr", "system/Note.rs"),
        ("system/DocumentReference.rr", None),
        ("system/DocumentReference.x", None),
        ("system/documentReference.r", None),
        ("system/DocumentReference.rs?category=x", None),
        ("launch", None),
        ("system/.r", None),
    ],
)
def test_parse_scope(text, parsed):
    scope = parse_scope(text)
    assert (str(scope) if scope else None) == parsed


@pytest.mark.parametrize(
    ("requested", "allowed", "granted"),
    [
        ("system/Binary.r", ("system/*.rs",), ("system/Binary.r",)),
        (
            "system/*.read",
            ("system/DocumentReference.rs", "system/Binary.r"),
            ("system/Binary.r", "system/DocumentReference.rs"),
        ),
        (
            "system/DocumentReference.r system/DocumentReference.s",
            ("system/DocumentReference.rs",),
            ("system/DocumentReference.rs",),
        ),
        ("system/DocumentReference.rs", ("garbage", "user/*.*"), ()),
        ("", ("system/*.*",), ()),
    ],
)
def test_grant_scopes(requested, allowed, granted):
    assert grant_scopes(requested, allowed) == granted
