"""`scribe users …` and `scribe clients …`: what they print, what they store, how they refuse."""

from __future__ import annotations

import io
import json
import re

import pytest

from scribe.auth.smart import list_clients
from scribe.auth.users import authenticate, find_user
from scribe.cli import run
from scribe.config import Settings
from scribe.store.db import open_database
from tests.test_auth_keys import ec_key, jwks, rsa_key


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    return tmp_path


def database():
    return open_database(Settings())


def scribe(monkeypatch, capsys, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_reads_the_password_from_stdin(data_dir, monkeypatch, capsys):
    code, out, err = scribe(
        monkeypatch,
        capsys,
        "users",
        "add",
        "dr-a",
        "--password-stdin",
        "--display-name",
        "Dr. A",
        stdin="correct horse battery\n",
    )
    assert code == 0 and out == "" and "dr-a saved (clinician)" in err
    assert "correct horse" not in err
    assert authenticate(database(), "dr-a", "correct horse battery").display_name == "Dr. A"


def test_users_add_admin_and_list(data_dir, monkeypatch, capsys):
    assert (
        scribe(
            monkeypatch, capsys, "users", "add", "boss", "--password-stdin", "--admin", stdin="correct horse battery"
        )[0]
        == 0
    )
    assert scribe(monkeypatch, capsys, "users", "add", "sso-user", "--no-password")[0] == 0
    code, out, _ = scribe(monkeypatch, capsys, "users", "list")
    lines = [line.split() for line in out.splitlines()]
    assert code == 0 and lines == [["boss", "admin", "active", "password"], ["sso-user", "clinician", "active", "oidc"]]


@pytest.mark.parametrize("password", ["", "\n", "short\n", "eleven-char"])
def test_users_add_refuses_empty_or_short_passwords(data_dir, monkeypatch, capsys, password):
    code, out, err = scribe(monkeypatch, capsys, "users", "add", "dr-a", "--password-stdin", stdin=password)
    assert code == 3 and out == "" and "at least 12 characters" in err
    assert find_user(database(), "dr-a") is None


def test_users_add_refuses_a_multi_line_password(data_dir, monkeypatch, capsys):
    code, _, err = scribe(
        monkeypatch, capsys, "users", "add", "dr-a", "--password-stdin", stdin="correct horse battery\nsecond line\n"
    )
    assert code == 3 and "several lines" in err


def test_existing_user_is_refused_unless_update(data_dir, monkeypatch, capsys):
    scribe(monkeypatch, capsys, "users", "add", "dr-a", "--password-stdin", "--admin", stdin="correct horse battery")
    code, _, err = scribe(monkeypatch, capsys, "users", "add", "dr-a", "--password-stdin", stdin="another password!")
    assert code == 3 and "already exists" in err and "--update" in err
    assert authenticate(database(), "dr-a", "correct horse battery")
    code, _, _ = scribe(
        monkeypatch, capsys, "users", "add", "dr-a", "--password-stdin", "--update", stdin="another password!"
    )
    assert code == 0 and authenticate(database(), "dr-a", "another password!").role == "admin"
    assert (
        scribe(
            monkeypatch,
            capsys,
            "users",
            "add",
            "dr-a",
            "--password-stdin",
            "--update",
            "--clinician",
            stdin="another password!",
        )[0]
        == 0
    )
    assert find_user(database(), "dr-a").role == "clinician"


@pytest.mark.parametrize(
    "argv", [["users", "add", "dr-a"], ["users", "add", "dr-a", "--password-stdin", "--no-password"]]
)
def test_users_add_needs_exactly_one_password_source(data_dir, monkeypatch, capsys, argv):
    code, _, err = scribe(monkeypatch, capsys, *argv, stdin="correct horse battery")
    assert code == 2 and "exactly one of --password-stdin and --no-password" in err


def test_users_add_refuses_a_bad_username(data_dir, monkeypatch, capsys):
    code, _, err = scribe(monkeypatch, capsys, "users", "add", "bad name", "--no-password")
    assert code == 3 and "username" in err


def test_users_disable_and_enable(data_dir, monkeypatch, capsys):
    scribe(monkeypatch, capsys, "users", "add", "dr-a", "--no-password")
    assert scribe(monkeypatch, capsys, "users", "disable", "dr-a")[0] == 0
    assert find_user(database(), "dr-a").active is False
    assert "disabled" in scribe(monkeypatch, capsys, "users", "list")[1]
    assert scribe(monkeypatch, capsys, "users", "enable", "dr-a")[0] == 0
    assert find_user(database(), "dr-a").active is True
    code, _, err = scribe(monkeypatch, capsys, "users", "disable", "nobody")
    assert code == 3 and "no user" in err


# ------------------------------------------------------------------------------------------ clients


def test_clients_add_prints_only_the_client_id(data_dir, monkeypatch, capsys, tmp_path):
    key_file = tmp_path / "jwks.json"
    key_file.write_text(json.dumps(jwks(rsa_key(), ec_key())))
    code, out, err = scribe(
        monkeypatch,
        capsys,
        "clients",
        "add",
        "Epic prod",
        "--jwks",
        str(key_file),
        "--scope",
        "system/DocumentReference.read",
        "--scope",
        "system/Binary.r",
    )
    assert code == 0 and out.count("\n") == 1
    client_id = out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", client_id)  # never starts with "-", so it can be passed to the CLI
    [client] = list_clients(database())
    assert (client.client_id, client.name, client.scopes) == (
        client_id,
        "Epic prod",
        ("system/DocumentReference.rs", "system/Binary.r"),
    )  # v1 stored in v2 form
    assert "system/DocumentReference.rs" in err
    code, out, _ = scribe(monkeypatch, capsys, "clients", "list")
    assert code == 0 and out.split()[:2] == [client_id, "active"] and out.rstrip().endswith("Epic prod")


def test_clients_add_defaults_to_document_reading(data_dir, monkeypatch, capsys, tmp_path):
    key_file = tmp_path / "jwks.json"
    key_file.write_text(json.dumps(jwks(rsa_key())))
    assert scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file))[0] == 0
    assert list_clients(database())[0].scopes == ("system/DocumentReference.rs",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps({"keys": [rsa_key().private_jwk]}), "private"),
        ("this is not json", "not JSON"),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}), "symmetric"),
        ("[]", "a key set is"),
        (json.dumps(jwks(ec_key("p256", "ES256"))), "EC keys must be P-384"),
        (json.dumps({"keys": [{**rsa_key().public_jwk, "alg": "RS256"}]}), "cannot sign RS384 or ES384"),
    ],
)
def test_clients_add_refuses_private_keys_and_garbage(data_dir, monkeypatch, capsys, tmp_path, content, message):
    key_file = tmp_path / "jwks.json"
    key_file.write_text(content)
    code, out, err = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file))
    assert code == 3 and out == "" and message in err
    assert list_clients(database()) == []


def test_clients_add_refuses_a_missing_file_and_bad_scopes(data_dir, monkeypatch, capsys, tmp_path):
    code, _, err = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(tmp_path / "absent.json"))
    assert code == 3 and "cannot read --jwks" in err
    key_file = tmp_path / "jwks.json"
    key_file.write_bytes(b"\xff\xfe{}")
    code, _, err = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file))
    assert code == 3 and "cannot read --jwks" in err
    key_file.write_text(json.dumps(jwks(rsa_key())))
    for scope in ("user/*.*", "system/DocumentReference.xyz", "DocumentReference.rs"):
        code, _, err = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file), "--scope", scope)
        assert code == 3 and "system/ scopes" in err
    assert list_clients(database()) == []


def test_clients_disable_and_enable(data_dir, monkeypatch, capsys, tmp_path):
    key_file = tmp_path / "jwks.json"
    key_file.write_text(json.dumps(jwks(rsa_key())))
    client_id = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file))[1].strip()
    assert scribe(monkeypatch, capsys, "clients", "disable", client_id)[0] == 0
    assert list_clients(database())[0].active is False
    assert scribe(monkeypatch, capsys, "clients", "enable", client_id)[0] == 0
    assert list_clients(database())[0].active is True
    assert scribe(monkeypatch, capsys, "clients", "disable", "made-up")[0] == 3


# ------------------------------------------------------------------------------------------ --data-dir


def test_data_dir_option_gives_the_server_its_accounts_and_tokens(data_dir, monkeypatch, capsys, tmp_path_factory):
    """`users add --data-dir D` and `token create --data-dir D` write to D, not SCRIBE_DATA_DIR: a server on D
    signs the user in and accepts the token; a server on the environment's directory refuses both."""
    from fastapi.testclient import TestClient

    from scribe.api.app import create_app

    other = tmp_path_factory.mktemp("served")
    code, _, err = scribe(
        monkeypatch,
        capsys,
        "users",
        "add",
        "dr-d",
        "--password-stdin",
        "--data-dir",
        str(other),
        stdin="correct horse battery",
    )
    assert code == 0, err
    code, out, err = scribe(monkeypatch, capsys, "token", "create", "--sub", "dr-d", "--data-dir", str(other))
    assert code == 0, err
    token = out.strip()
    assert __import__("os").environ["SCRIBE_DATA_DIR"] == str(data_dir)  # restored after each command
    for directory, expected in ((other, 200), (data_dir, 401)):
        with TestClient(create_app(Settings(data_dir=directory), load_asr=False)) as client:
            assert client.get("/v1/encounters", headers={"Authorization": f"Bearer {token}"}).status_code == expected
            signed_in = client.post("/v1/session", data={"username": "dr-d", "password": "correct horse battery"})
            assert signed_in.status_code == expected


# ------------------------------------------------------------------------------------------ token create


def test_token_create_refuses_a_subject_the_server_would_refuse(data_dir, monkeypatch, capsys, tmp_path):
    """An unknown or disabled --sub (a user; with system/ scopes, a registered client id) is bad input, exit 3, and
    nothing reaches stdout: such a token would only ever be refused."""
    code, out, err = scribe(monkeypatch, capsys, "token", "create", "--sub", "nobody")
    assert (code, out) == (3, "") and "cannot mint a token for 'nobody': unknown user" in err
    assert "scribe users list" in err
    scribe(monkeypatch, capsys, "users", "add", "dr-a", "--no-password")
    code, out, err = scribe(
        monkeypatch, capsys, "token", "create", "--sub", "dr-a", "--scope", "system/DocumentReference.rs"
    )
    assert (code, out) == (3, "") and "'dr-a': unknown client" in err and "scribe clients list" in err
    scribe(monkeypatch, capsys, "users", "disable", "dr-a")
    code, out, err = scribe(monkeypatch, capsys, "token", "create", "--sub", "dr-a")
    assert (code, out) == (3, "") and "account disabled" in err


def test_token_create_for_an_existing_user_or_client_works_on_the_server(data_dir, monkeypatch, capsys, tmp_path):
    from fastapi.testclient import TestClient

    from scribe.api.app import create_app

    scribe(monkeypatch, capsys, "users", "add", "dr-a", "--no-password")
    key_file = tmp_path / "jwks.json"
    key_file.write_text(json.dumps(jwks(ec_key())))
    client_id = scribe(monkeypatch, capsys, "clients", "add", "ehr", "--jwks", str(key_file))[1].strip()
    code, user_token, err = scribe(monkeypatch, capsys, "token", "create", "--sub", "dr-a")
    assert code == 0, err
    code, system_token, err = scribe(
        monkeypatch, capsys, "token", "create", "--sub", client_id, "--scope", "system/DocumentReference.rs"
    )
    assert code == 0, err
    with TestClient(create_app(Settings(), load_asr=False)) as client:
        mine = client.get("/v1/encounters", headers={"Authorization": f"Bearer {user_token.strip()}"})
        assert mine.status_code == 200
        found = client.get(
            "/fhir/DocumentReference?patient=pt-1", headers={"Authorization": f"Bearer {system_token.strip()}"}
        )
        assert found.status_code == 200 and found.json()["total"] == 0
