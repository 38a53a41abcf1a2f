"""Bearer tokens from the site's OIDC provider: keys from a real local JWKS server or a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from scribe.auth.oidc import OidcVerifier
from scribe.auth.tokens import AuthError
from scribe.auth.users import save_user, set_user_active
from scribe.config import Settings
from scribe.errors import ConfigError
from tests.accounts import KEY, bearer, enrol
from tests.test_auth_app import audit_rows, build_app
from tests.test_auth_keys import SigningKey, ec_key, jwks, rsa_key, unsigned_token

ISSUER = "https://idp.example.org/realms/hospital"
AUDIENCE = "scribe"
RSA, EC = rsa_key("rsa-1", "RS256"), ec_key("ec-1", "ES256")
RSA_384, EC_384 = rsa_key("rsa-2", "RS384"), ec_key("ec-2", "ES384")


class JwksServer:
    """A real HTTP server on 127.0.0.1 publishing a key set the test can change, counting fetches."""

    def __init__(self, key_set: dict) -> None:
        self.key_set, self.fetches, self.failing = key_set, 0, False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.fetches += 1
                status, body = (503, b"down") if outer.failing else (200, json.dumps(outer.key_set).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/realms/hospital/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp():
    server = JwksServer(jwks(RSA, EC, RSA_384, EC_384))
    yield server
    server.close()


def idp_token(key: SigningKey, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f81d4fae",
        "preferred_username": "dr-a",
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    return key.sign({k: v for k, v in claims.items() if v is not None})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(tmp_path, idp):
    settings = Settings(
        data_dir=tmp_path, secret_key=KEY, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=idp.url
    )
    return build_app(settings)


@pytest.mark.parametrize("key", [RSA, EC, RSA_384, EC_384], ids=lambda k: k.alg)
def test_provider_tokens_are_clinicians(client, key):
    response = client.get("/probe/x", headers=auth(idp_token(key)))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "dr-a", "scopes": ["user/*.*"], "kind": "user"}


def test_keys_are_fetched_once_and_cached(client, idp):
    for key in (RSA, EC, RSA, EC_384):
        assert client.get("/probe/x", headers=auth(idp_token(key))).status_code == 200
    assert idp.fetches == 1


def test_scribe_tokens_still_work_beside_oidc(app, client):
    enrol(app.state.database, headers := bearer("dr-b"))
    assert client.get("/probe/x", headers=headers).json()["subject"] == "dr-b"
    assert client.get("/probe/x", headers=bearer("dr-nobody")).status_code == 401  # unlike a provider's user


def test_a_provider_user_needs_no_local_account_but_a_disabled_one_is_refused_on_the_websocket_too(app, client):
    with client.websocket_connect("/v1/encounters/enc-oidc/stream", headers=auth(idp_token(RSA))) as ws:
        assert ws.receive_json()["code"] == "server_busy"  # past authentication: no ASR loaded in this app
    save_user(app.state.database, "dr-a", None)
    set_user_active(app.state.database, "dr-a", False)
    with client.websocket_connect("/v1/encounters/enc-oidc/stream", headers=auth(idp_token(RSA))) as ws:
        message = ws.receive_json()
        assert message["code"] == "unauthorized" and "disabled" in message["message"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (idp_token(RSA, iss="https://other-idp.example.org"), "issuer"),
        (idp_token(RSA, aud="another-app"), "Audience"),
        (idp_token(RSA, aud=None), "aud"),
        (idp_token(EC, exp=int(time.time()) - 3600), "expired"),
        (idp_token(RSA, exp=None), "exp"),
        (idp_token(rsa_key("rsa-unknown", "RS256")), "no key 'rsa-unknown'"),
        (idp_token(rsa_key("rsa-1", "RS256")), "Signature verification failed"),  # same kid, another key
        (EC.sign({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, kid="rsa-1"), "does not fit"),
        (idp_token(rsa_key("rsa-1", "RS512")), "'RS512' is not accepted"),
        (unsigned_token({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}), "invalid token"),
        (idp_token(RSA, preferred_username=None), "preferred_username"),
        (idp_token(RSA, preferred_username="  "), "preferred_username"),
        (idp_token(RSA).split(".")[0] + ".bm90IGpzb24." + idp_token(RSA).split(".")[2], "invalid token"),
    ],
    ids=[
        "issuer",
        "audience",
        "no-aud",
        "expired",
        "no-exp",
        "unknown-kid",
        "wrong-key",
        "alg-key-mismatch",
        "rs512",
        "none",
        "no-username",
        "blank-username",
        "garbage-payload",
    ],
)
def test_bad_provider_tokens_are_401(app, client, token, message):
    response = client.get("/probe/x", headers=auth(token))
    assert response.status_code == 401
    assert message in response.json()["issue"][0]["diagnostics"]
    [row] = audit_rows(app, "auth-failure")
    assert row.path == "/probe/{item}" and row.status_code == 401


def test_refused_provider_token_is_audited_under_the_claimed_username(app, client):
    assert client.get("/probe/x", headers=auth(idp_token(RSA, aud="another-app"))).status_code == 401
    assert audit_rows(app, "auth-failure")[0].actor == "dr-a"


def test_an_inactive_account_is_refused_and_an_admin_account_is_honoured(app, client):
    save_user(app.state.database, "dr-a", None, role="admin")
    token = idp_token(RSA)
    assert client.get("/probe-admin", headers=auth(token)).status_code == 200
    assert client.get("/probe-admin", headers=auth(idp_token(RSA, preferred_username="dr-b"))).status_code == 403
    set_user_active(app.state.database, "dr-a", False)
    response = client.get("/probe/x", headers=auth(token))
    assert response.status_code == 401 and "disabled" in response.json()["issue"][0]["diagnostics"]


def test_keys_from_a_file_and_another_username_claim(tmp_path):
    key_file = tmp_path / "idp-keys.json"
    key_file.write_text(json.dumps(jwks(EC_384)))
    settings = Settings(
        data_dir=tmp_path,
        secret_key=KEY,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=key_file,
        oidc_username_claim="upn",
    )
    with TestClient(build_app(settings)) as client:
        good = client.get("/probe/x", headers=auth(idp_token(EC_384, upn="dr.c@hospital.org")))
        assert good.status_code == 200 and good.json()["subject"] == "dr.c@hospital.org"
        assert client.get("/probe/x", headers=auth(idp_token(EC_384))).status_code == 401  # no upn claim
        assert client.get("/probe/x", headers=auth(idp_token(RSA, upn="dr-c"))).status_code == 401  # not in the file


def test_provider_unreachable_is_401_not_500(tmp_path, idp):
    idp.failing = True
    settings = Settings(
        data_dir=tmp_path, secret_key=KEY, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=idp.url
    )
    with TestClient(build_app(settings)) as client:
        response = client.get("/probe/x", headers=auth(idp_token(RSA)))
    assert response.status_code == 401 and "no key 'rsa-1'" in response.json()["issue"][0]["diagnostics"]


# ------------------------------------------------------------------------------------------ the verifier itself


def verifier(idp: JwksServer, **kwargs) -> OidcVerifier:
    return OidcVerifier(ISSUER, AUDIENCE, jwks_url=idp.url, **kwargs)


def test_an_unknown_kid_refreshes_the_keys_so_rotation_needs_no_restart(idp):
    check = verifier(idp, min_refresh_interval_s=0)
    assert check.verify(idp_token(RSA)).username == "dr-a"
    rotated = rsa_key("rsa-new", "RS256")
    idp.key_set = jwks(rotated)
    identity = check.verify(idp_token(rotated, preferred_username="dr-n"))
    assert identity.username == "dr-n" and identity.expires_at > time.time()
    assert idp.fetches == 2
    with pytest.raises(AuthError, match="no key 'rsa-1'"):  # the retired key is gone after the refresh
        check.verify(idp_token(RSA))


def test_refreshes_for_unknown_kids_are_rate_limited(idp):
    check = verifier(idp, min_refresh_interval_s=60)
    check.verify(idp_token(RSA))
    for n in range(5):
        with pytest.raises(AuthError, match="no key"):
            check.verify(idp_token(rsa_key(f"made-up-{n}", "RS256")))
    assert idp.fetches == 1


def test_known_keys_survive_a_failed_refresh(idp):
    check = verifier(idp, min_refresh_interval_s=0, max_age_s=0)  # every call wants a refresh
    check.verify(idp_token(EC))
    idp.failing = True
    assert check.verify(idp_token(EC)).username == "dr-a"
    assert idp.fetches == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"oidc_issuer": ISSUER}, "SCRIBE_OIDC_AUDIENCE"),
        ({"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}, "exactly one of"),
        (
            {
                "oidc_issuer": ISSUER,
                "oidc_audience": AUDIENCE,
                "oidc_jwks_url": "http://x",
                "oidc_jwks_file": "/k.json",
            },
            "exactly one of",
        ),
    ],
)
def test_half_a_configuration_is_a_config_error(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        OidcVerifier.from_settings(Settings(data_dir=tmp_path, **fields))


def test_no_issuer_means_no_oidc(tmp_path):
    assert OidcVerifier.from_settings(Settings(data_dir=tmp_path)) is None


def test_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIBE_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("SCRIBE_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("SCRIBE_OIDC_JWKS_FILE", str(tmp_path / "k.json"))
    monkeypatch.setenv("SCRIBE_OIDC_USERNAME_CLAIM", "email")
    check = OidcVerifier.from_settings(Settings(data_dir=tmp_path))
    assert check is not None and check.username_claim == "email" and check.jwks_file == tmp_path / "k.json"


def test_hs256_tokens_are_never_checked_against_provider_keys(client):
    """An HS256 token MACed with a provider's public key must not pass (the classic alg confusion)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    public_pem = RSA.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
        + b"."
        + b64(
            json.dumps(
                {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "dr-a", "exp": int(time.time()) + 60}
            ).encode()
        )
    )
    forged = signing_input + b"." + b64(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    response = client.get("/probe/x", headers=auth(forged.decode()))
    assert response.status_code == 401 and "invalid token" in response.json()["issue"][0]["diagnostics"]
