"""Browser sign-in: `/v1/session`, the cookie's flags, CSRF on unsafe methods, sign-out, expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from scribe.auth import throttle
from scribe.auth.users import save_user, set_user_active
from scribe.config import Settings
from scribe.store.models import WebSession
from tests.accounts import KEY, bearer, enrol
from tests.test_auth_app import audit_rows, build_app

PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path):
    return build_app(Settings(data_dir=tmp_path, secret_key=KEY, session_lifetime_s=3600))


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        save_user(app.state.database, "dr-a", PASSWORD, display_name="Dr. A")
        yield test_client


def sign_in(client: TestClient, username: str = "dr-a", password: str = PASSWORD, **kwargs):
    return client.post("/v1/session", data={"username": username, "password": password}, **kwargs)


def sessions(app) -> list[WebSession]:
    with app.state.database.session() as session:
        return list(session.scalars(select(WebSession)))


def test_sign_in_sets_a_strict_http_only_cookie_and_returns_the_csrf_token(app, client):
    response = sign_in(client)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "dr-a" and body["display_name"] == "Dr. A" and len(body["csrf_token"]) >= 32
    cookie = response.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert cookie.startswith("scribe_session=") and "httponly" in flags and "secure" not in flags
    assert flags["samesite"].lower().strip() == "samesite=strict" and flags["max-age"].strip() == "Max-Age=3600"
    assert flags["path"].strip() == "Path=/"
    assert response.headers["cache-control"] == "no-store"
    [row] = sessions(app)
    value = client.cookies["scribe_session"]
    assert row.id_hash == hashlib.sha256(value.encode()).hexdigest() and row.csrf_token == body["csrf_token"]
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    [login] = audit_rows(app, "login")
    assert (login.actor, login.actor_kind, login.method, login.path) == ("dr-a", "user", "POST", "/v1/session")


def test_cookie_is_secure_behind_an_https_public_url(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key=KEY, public_url="https://scribe.example.org")
    app = build_app(settings)
    with TestClient(app) as client:
        save_user(app.state.database, "dr-a", PASSWORD)
        cookie = sign_in(client).headers["set-cookie"]
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(
    ("username", "password", "actor"), [("dr-a", "wrong password!!", "dr-a"), ("nobody", PASSWORD, None)]
)
def test_wrong_password_and_unknown_user_look_the_same(app, client, username, password, actor):
    response = sign_in(client, username, password)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert response.json()["issue"][0]["diagnostics"] == "wrong username or password"
    [row] = audit_rows(app, "auth-failure")
    assert (row.actor, row.method, row.path, row.status_code) == (actor, "POST", "/v1/session", 401)
    assert password not in (row.detail or "")
    assert sessions(app) == [] and audit_rows(app, "login") == []


def test_cookie_authenticates_safe_requests_without_csrf(client):
    sign_in(client)
    assert client.get("/probe/x").json() == {"subject": "dr-a", "scopes": ["user/*.*"], "kind": "user"}
    session = client.get("/v1/session")
    assert session.status_code == 200 and session.json()["username"] == "dr-a"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_cookie_requests_need_the_csrf_header(client, method):
    csrf = sign_in(client).json()["csrf_token"]
    missing = client.request(method, "/probe/x")
    tampered = csrf[:-1] + ("B" if csrf[-1] == "A" else "A")  # differs even when the token ends in "A"
    wrong = client.request(method, "/probe/x", headers={"X-CSRF-Token": tampered})
    good = client.request(method, "/probe/x", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 403 and wrong.status_code == 403
    assert "X-CSRF-Token" in missing.json()["issue"][0]["diagnostics"]
    assert good.status_code == 200 and good.json()["subject"] == "dr-a"


def test_csrf_guards_a_real_route(client):
    csrf = sign_in(client).json()["csrf_token"]
    assert client.post("/v1/stream-tickets", json={"encounter_id": "enc-1"}).status_code == 403
    response = client.post("/v1/stream-tickets", json={"encounter_id": "enc-1"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.json()["ticket"]


def test_a_bearer_token_wins_over_the_cookie(app, client):
    sign_in(client)
    enrol(app.state.database, headers := bearer("dr-z"))
    assert client.post("/probe/x", headers=headers).json()["subject"] == "dr-z"  # no CSRF: not a cookie request
    assert client.get("/probe/x", headers={"Authorization": "Bearer broken"}).status_code == 401


def test_sign_out_needs_csrf_and_deletes_the_session(app, client):
    csrf = sign_in(client).json()["csrf_token"]
    assert client.delete("/v1/session").status_code == 403
    assert len(sessions(app)) == 1
    response = client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    cleared = response.headers["set-cookie"]
    assert cleared.startswith("scribe_session=") and "Max-Age=0" in cleared
    assert sessions(app) == []
    [logout] = audit_rows(app, "logout")
    assert (logout.actor, logout.method, logout.status_code) == ("dr-a", "DELETE", 204)
    assert client.get("/probe/x").status_code == 401  # cookie gone from the jar
    assert client.delete("/v1/session").status_code == 401


def test_a_signed_out_cookie_no_longer_works(app, client):
    csrf = sign_in(client).json()["csrf_token"]
    value = client.cookies["scribe_session"]
    client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    client.cookies.set("scribe_session", value)
    response = client.get("/probe/x")
    assert response.status_code == 401 and "signed out" in response.json()["issue"][0]["diagnostics"]


def test_an_expired_session_is_refused_and_purged_at_the_next_sign_in(app, client):
    sign_in(client)
    with app.state.database.session() as session, session.begin():
        session.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = client.get("/probe/x")
    assert response.status_code == 401 and "expired" in response.json()["issue"][0]["diagnostics"]
    assert audit_rows(app, "auth-failure")[-1].actor == "dr-a"
    client.cookies.clear()
    sign_in(client)
    assert len(sessions(app)) == 1  # the expired row went


def test_a_disabled_user_is_signed_out_everywhere(app, client):
    sign_in(client)
    set_user_active(app.state.database, "dr-a", False)
    assert client.get("/probe/x").status_code == 401
    assert sign_in(client).status_code == 401


def test_made_up_cookie_is_401(client):
    client.cookies.set("scribe_session", "made-up")
    assert client.get("/probe/x").status_code == 401
    assert client.get("/v1/session").status_code == 401


@pytest.mark.parametrize(
    ("origin", "status"),
    [("http://testserver", 200), ("https://app.example.org", 200), ("https://evil.example.com", 403), ("null", 403)],
)
def test_sign_in_from_another_site_is_refused(tmp_path, origin, status):
    settings = Settings(data_dir=tmp_path, secret_key=KEY, allowed_origins=["https://app.example.org/"])
    app = build_app(settings)
    with TestClient(app) as client:
        save_user(app.state.database, "dr-a", PASSWORD)
        response = sign_in(client, headers={"Origin": origin})
    assert response.status_code == status
    assert ("set-cookie" in response.headers) is (status == 200)


def test_sessions_on_every_database(database_target):
    """Sign in, use, expire and sign out on SQLite and PostgreSQL (timezone handling differs between them)."""
    settings, schema, _ = database_target
    app = build_app(settings, schema)
    with TestClient(app) as client:
        save_user(app.state.database, "dr-a", PASSWORD, role="admin")
        csrf = sign_in(client).json()["csrf_token"]
        assert client.get("/probe-admin").json()["subject"] == "dr-a"
        assert client.post("/probe/x", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert client.delete("/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/probe/x").status_code == 401
        sign_in(client)
        with app.state.database.session() as session, session.begin():
            session.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert client.get("/probe/x").status_code == 401
        assert [r.action for r in audit_rows(app)] == ["login", "logout", "auth-failure", "login", "auth-failure"]


def test_repeated_failed_sign_ins_lock_the_account_for_a_while(app, client, monkeypatch):
    """Failures are counted from the audit trail, so every node sees the same count."""
    monkeypatch.setattr(throttle, "ACCOUNT_LIMIT", 3)
    for _ in range(3):
        assert sign_in(client, password="wrong password!!").status_code == 401
    locked = sign_in(client)  # even the right password, while locked
    assert locked.status_code == 429 and locked.json()["issue"][0]["code"] == "throttled"
    assert "try again" in locked.json()["issue"][0]["diagnostics"]
    assert sign_in(client, "someone-else", PASSWORD).status_code == 401  # other accounts are not affected
    monkeypatch.setattr(throttle, "WINDOW_S", 0.0)  # the window has passed
    assert sign_in(client).status_code == 200


def at(app, address: str) -> TestClient:
    """A browser at another client address, on the same running app (no second lifespan)."""
    return TestClient(app, client=(address, 50000))


def test_password_spraying_from_one_address_is_refused_for_every_account(app, client):
    """30 failures from one address over any accounts (documented: ADDRESS_LIMIT in 15 minutes) and that address
    gets 429 for every further sign-in or token request, even with a right password; other addresses do not."""
    assert throttle.ADDRESS_LIMIT == 30 and throttle.WINDOW_S == 15 * 60
    save_user(app.state.database, "dr-b", PASSWORD)
    attacker, clinician = at(app, "203.0.113.9"), at(app, "198.51.100.7")
    for n in range(throttle.ADDRESS_LIMIT):
        username = "dr-a" if n < 5 else f"user-{n}"  # an account that exists, then made-up ones
        assert sign_in(attacker, username, "Spring2024!guess").status_code == 401
    refused = sign_in(attacker, "dr-b", PASSWORD)
    assert refused.status_code == 429 and refused.json()["issue"][0]["code"] == "throttled"
    assert "from this address" in refused.json()["issue"][0]["diagnostics"] and "set-cookie" not in refused.headers
    assert attacker.post("/auth/token", data={"grant_type": "client_credentials"}).status_code == 429
    assert sign_in(clinician, "dr-b", PASSWORD).status_code == 200
    assert sign_in(clinician, "dr-a", PASSWORD).status_code == 200  # 5 failures from elsewhere lock nothing here
    throttled = [r for r in audit_rows(app, "auth-failure") if r.status_code == 429]
    assert [(r.actor, r.source_ip, r.path) for r in throttled] == [
        (None, "203.0.113.9", "/v1/session"),
        (None, "203.0.113.9", "/auth/token"),
    ]


def test_one_address_cannot_lock_a_clinician_out_for_everyone(app, client):
    """Ten failures on one account from one address stop that address trying that account, nobody else."""
    attacker, clinician = at(app, "203.0.113.9"), at(app, "198.51.100.7")
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert sign_in(attacker, "dr-a", "wrong password!!").status_code == 401
    locked = sign_in(attacker, "dr-a", PASSWORD)
    assert locked.status_code == 429 and "this account from this address" in locked.json()["issue"][0]["diagnostics"]
    assert sign_in(clinician, "dr-a", PASSWORD).status_code == 200
    assert sign_in(attacker, "someone-else", PASSWORD).status_code == 401  # its other attempts are still checked
    [refusal] = [r for r in audit_rows(app, "auth-failure") if r.status_code == 429]
    assert (refusal.actor, refusal.source_ip) == ("dr-a", "203.0.113.9")


def test_many_addresses_reach_the_accounts_ceiling(app, client, monkeypatch):
    """An account's failures from every address together lock it for everyone at ACCOUNT_CEILING: far above what
    one address may add (ACCOUNT_LIMIT), so it takes ACCOUNT_CEILING // ACCOUNT_LIMIT addresses."""
    assert throttle.ACCOUNT_CEILING // throttle.ACCOUNT_LIMIT >= 10
    monkeypatch.setattr(throttle, "ACCOUNT_LIMIT", 2)
    monkeypatch.setattr(throttle, "ACCOUNT_CEILING", 4)
    save_user(app.state.database, "dr-b", PASSWORD)
    for address in ("203.0.113.1", "203.0.113.2"):
        for _ in range(2):
            assert sign_in(at(app, address), "dr-a", "wrong password!!").status_code == 401
    elsewhere = at(app, "198.51.100.7")
    locked = sign_in(elsewhere, "dr-a", PASSWORD)
    assert locked.status_code == 429 and locked.json()["issue"][0]["diagnostics"].startswith(
        "too many failed sign-ins for this account; try again"
    )
    assert sign_in(elsewhere, "dr-b", PASSWORD).status_code == 200
    monkeypatch.setattr(throttle, "WINDOW_S", 0.0)
    assert sign_in(elsewhere, "dr-a", PASSWORD).status_code == 200


def test_throttling_counts_in_the_shared_database(database_target, monkeypatch):
    """Failures on one node throttle the same address and account on another (SQLite file or PostgreSQL schema)."""
    monkeypatch.setattr(throttle, "ACCOUNT_LIMIT", 2)
    settings, schema = database_target[:2]
    first, second = build_app(settings, schema), build_app(settings, schema)
    with TestClient(first) as node_a, TestClient(second) as node_b:
        save_user(first.state.database, "dr-a", PASSWORD)
        assert [sign_in(node_a, password="wrong password!!").status_code for _ in range(2)] == [401, 401]
        assert sign_in(node_b).status_code == 429
