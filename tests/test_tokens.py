import time

import jwt
import pytest

from scribe.auth.tokens import AuthError, Principal, create_token, verify_token
from scribe.cli import run

KEY = b"0123456789abcdef0123456789abcdef"


def test_round_trip():
    token = create_token(KEY, "dr-a", ("user/*.*",), 60)
    principal = verify_token(KEY, token)
    assert principal.subject == "dr-a" and principal.scopes == ("user/*.*",)
    assert time.time() < principal.expires_at <= time.time() + 60


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t[:-4] + "AAAA", "invalid token"),
        (lambda t: "not.a.jwt", "invalid token"),
        (lambda t: jwt.encode({"sub": "x", "iss": "scribe", "exp": int(time.time()) - 5}, KEY, "HS256"), "expired"),
        (lambda t: jwt.encode({"sub": "x", "iss": "other", "exp": int(time.time()) + 60}, KEY, "HS256"), "invalid"),
        (
            lambda t: jwt.encode({"sub": "x", "iss": "scribe", "exp": int(time.time()) + 60}, b"k" * 32, "HS256"),
            "invalid",
        ),
        (lambda t: jwt.encode({"sub": "x", "iss": "scribe", "exp": int(time.time()) + 60}, KEY, "HS512"), "invalid"),
    ],
)
def test_bad_tokens_are_rejected(mutate, message):
    with pytest.raises(AuthError, match=message):
        verify_token(KEY, mutate(create_token(KEY, "dr-a")))


def test_audience_is_checked_when_configured():
    token = create_token(KEY, "dr-a", audience="https://scribe.example.org")
    assert verify_token(KEY, token, audience="https://scribe.example.org").subject == "dr-a"
    with pytest.raises(AuthError):
        verify_token(KEY, token, audience="https://other.example.org")


@pytest.mark.parametrize(
    ("scopes", "needed", "ok"),
    [
        (("user/*.*",), "user/Encounter.rs", True),
        (("user/*.*",), "system/DocumentReference.rs", False),
        (("system/DocumentReference.rs",), "system/DocumentReference.r", True),
        (("system/DocumentReference.rs",), "system/DocumentReference.cu", False),
        (("system/DocumentReference.rs",), "system/AuditEvent.rs", False),
        (("system/*.rs",), "system/AuditEvent.s", True),
    ],
)
def test_scope_matching(scopes, needed, ok):
    assert Principal("x", scopes, 0).has_scope(needed) is ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"subject": " "}, "subject"), ({"ttl_s": 0}, "lifetime"), ({"scopes": ("admin",)}, "malformed scope")],
)
def test_create_rejects_bad_requests(kwargs, message):
    args = {"subject": "dr-a", **kwargs}
    with pytest.raises(AuthError, match=message):
        create_token(KEY, args.pop("subject"), **args)


def test_cli_token_create_prints_only_the_token(capsys, monkeypatch, tmp_path):
    """For a registered client (system scopes) and for a user, both made first as an operator makes them."""
    import json

    from tests.test_auth_keys import ec_key, jwks

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(ec_key())))
    assert run(["clients", "add", "ehr", "--jwks", str(tmp_path / "jwks.json")]) == 0
    assert run(["users", "add", "dr-b", "--no-password"]) == 0
    client_id = capsys.readouterr().out.strip()
    assert run(["token", "create", "--sub", client_id, "--scope", "system/DocumentReference.rs", "--ttl", "120"]) == 0
    out, _ = capsys.readouterr()
    token = out.strip()
    assert out.count("\n") == 1 and token.count(".") == 2
    assert run(["token", "create", "--sub", "dr-b"]) == 0
    second = capsys.readouterr().out.strip()
    from scribe.auth.signing_key import signing_key
    from scribe.config import Settings
    from scribe.store.db import open_database

    settings = Settings()
    key = signing_key(settings, open_database(settings))  # the same key the CLI stored in the database
    assert verify_token(key, token).scopes == ("system/DocumentReference.rs",)
    assert verify_token(key, second).scopes == ("user/*.*",)
    assert run(["token", "create", "--sub", "dr-b", "--ttl", "-1"]) == 2
    assert "lifetime" in capsys.readouterr().err


def test_cli_db_upgrade(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    assert run(["db", "upgrade"]) == 0
    assert "database up to date" in capsys.readouterr().err and (tmp_path / "scribe.db").is_file()


def test_a_refused_token_names_the_subject_it_claims_for_the_audit():
    forged = create_token(b"x" * 40, "ehr-1", ("system/DocumentReference.rs",), 60)
    with pytest.raises(AuthError) as caught:
        verify_token(KEY, forged)
    assert (caught.value.subject, caught.value.subject_kind) == ("ehr-1", "system")
    with pytest.raises(AuthError) as garbage:
        verify_token(KEY, "not.a.jwt")
    assert (garbage.value.subject, garbage.value.subject_kind) == (None, "anonymous")


@pytest.mark.parametrize(
    ("claimed", "kept"),
    [("dr-a", "dr-a"), ("a@b.org", "a@b.org"), ("x" * 256, None), ("drop table;", None), ("", None), ("nul\x00", None)],
)
def test_auth_error_keeps_only_plain_claimed_names(claimed, kept):
    error = AuthError("refused", subject=claimed)
    assert error.subject == kept and error.subject_kind == ("user" if kept else "anonymous")
