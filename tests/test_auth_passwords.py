"""Password hashing (scrypt, per-user salt, constant-time compare) and local accounts."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from scribe.auth.passwords import check_password_policy, hash_password, verify_password
from scribe.auth.tokens import AuthError
from scribe.auth.users import SIGN_IN_FAILED, authenticate, find_user, list_users, save_user, set_user_active
from scribe.config import Settings
from scribe.errors import BadInputError
from scribe.store.db import open_database
from scribe.store.models import User, WebSession

FAST = {"n": 2**10, "r": 8, "p": 1}  # the cheapest parameters verify_password accepts, so tests stay quick


def test_hash_encodes_its_parameters_and_a_fresh_salt():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert first != second  # per-user salt: equal passwords, different hashes
    assert verify_password("correct horse battery", first) and verify_password("correct horse battery", second)


def test_wrong_password_does_not_verify():
    encoded = hash_password("correct horse battery", **FAST)
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert not verify_password("", encoded)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.replace("scrypt$", "bcrypt$", 1),
        lambda e: "$".join(e.split("$")[:-1]),  # a field missing
        lambda e: e.replace("$1024$", "$1000$", 1),  # n not a power of two
        lambda e: e.replace("$1024$", "$2097152$", 1),  # n over the memory bound
        lambda e: e.replace("$8$", "$64$", 1),
        lambda e: e + "!",  # digest not base64
        lambda e: e.replace("$1024$", "$x$", 1),
        lambda e: "$".join(e.split("$")[:4] + ["", e.split("$")[5]]),  # empty salt
        lambda e: "$".join(e.split("$")[:5] + [base64.b64encode(b"short").decode()]),
        lambda e: "",
    ],
)
def test_malformed_or_tampered_encodings_never_verify(mutate):
    encoded = hash_password("correct horse battery", **FAST)
    assert not verify_password("correct horse battery", mutate(encoded))


@pytest.mark.parametrize(
    ("password", "ok"),
    [("", False), ("short", False), ("x" * 11, False), ("x" * 12, True), ("y" * 1024, True), ("y" * 1025, False)],
)
def test_password_policy(password, ok):
    if ok:
        check_password_policy(password)
    else:
        with pytest.raises(BadInputError, match="password must be"):
            check_password_policy(password)


# ------------------------------------------------------------------------------------------ accounts


@pytest.fixture
def database(tmp_path):
    return open_database(Settings(data_dir=tmp_path))


def test_save_and_authenticate(database):
    account = save_user(database, "dr-a", "correct horse battery", display_name="Dr. A")
    assert (account.username, account.role, account.active, account.has_password) == ("dr-a", "clinician", True, True)
    assert authenticate(database, "dr-a", "correct horse battery").display_name == "Dr. A"
    with database.session() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored.startswith("scrypt$") and "correct horse" not in stored


@pytest.mark.parametrize(
    "attempt",
    [
        ("dr-a", "wrong password here"),
        ("nobody", "correct horse battery"),
        ("dr-b", "correct horse battery"),
        ("bad name!", "correct horse battery"),
    ],
)
def test_every_sign_in_failure_says_the_same(database, attempt):
    save_user(database, "dr-a", "correct horse battery")
    save_user(database, "dr-b", None)  # OIDC-only: no password can match
    with pytest.raises(AuthError) as caught:
        authenticate(database, *attempt)
    assert str(caught.value) == SIGN_IN_FAILED


def test_failed_sign_in_names_the_account_only_when_it_exists(database):
    save_user(database, "dr-a", "correct horse battery")
    with pytest.raises(AuthError) as known:
        authenticate(database, "dr-a", "wrong password here")
    with pytest.raises(AuthError) as unknown:
        authenticate(database, "mistyped-password-in-username", "x")
    assert (known.value.subject, known.value.subject_kind) == ("dr-a", "user")
    assert (unknown.value.subject, unknown.value.subject_kind) == (None, "anonymous")


def test_disabled_user_cannot_sign_in_and_loses_sessions(database):
    from scribe.auth.web_sessions import start_session

    save_user(database, "dr-a", "correct horse battery")
    start_session(database, "dr-a", None)
    set_user_active(database, "dr-a", False)
    with pytest.raises(AuthError, match=SIGN_IN_FAILED):
        authenticate(database, "dr-a", "correct horse battery")
    with database.session() as session:
        assert session.scalars(select(WebSession)).all() == []
    set_user_active(database, "dr-a", True)
    assert authenticate(database, "dr-a", "correct horse battery").active
    with pytest.raises(BadInputError, match="no user"):
        set_user_active(database, "nobody", False)


def test_existing_user_needs_update_and_update_keeps_unstated_fields(database):
    save_user(database, "dr-a", "correct horse battery", display_name="Dr. A", role="admin")
    with pytest.raises(BadInputError, match="already exists"):
        save_user(database, "dr-a", "another long password")
    account = save_user(database, "dr-a", "another long password", update=True)
    assert (account.display_name, account.role) == ("Dr. A", "admin")
    assert authenticate(database, "dr-a", "another long password")
    with pytest.raises(AuthError):
        authenticate(database, "dr-a", "correct horse battery")
    assert save_user(database, "dr-a", None, role="clinician", update=True).has_password is False
    assert find_user(database, "dr-a").role == "clinician"
    assert [a.username for a in list_users(database)] == ["dr-a"]
    assert find_user(database, "nobody") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": ""}, "username"),
        ({"username": "-lead"}, "username"),
        ({"username": "a" * 65}, "username"),
        ({"username": "dr a"}, "username"),
        ({"role": "root"}, "role"),
        ({"display_name": " "}, "display name"),
        ({"password": "short"}, "at least 12"),
    ],
)
def test_save_refuses_bad_input(database, kwargs, message):
    args = {"username": "dr-a", "password": "correct horse battery", **kwargs}
    with pytest.raises(BadInputError, match=message):
        save_user(database, args.pop("username"), args.pop("password"), **args)
