"""The first start's account: made once on a database without any account, never beside an existing one."""

from __future__ import annotations

import threading

import pytest

import scribe.auth.users as users
from scribe.auth.passwords import MIN_PASSWORD_LENGTH
from scribe.auth.users import FIRST_ACCOUNT, authenticate, create_first_account, list_users, save_user
from scribe.store.db import open_database


@pytest.fixture
def database(database_target):
    settings, schema, _ = database_target
    db = open_database(settings, schema=schema)
    yield db
    db.engine.dispose()


def test_created_once_with_a_strong_password_that_signs_in(database):
    password = create_first_account(database)
    assert password is not None and len(password) >= MIN_PASSWORD_LENGTH
    account = authenticate(database, FIRST_ACCOUNT, password)
    assert (account.username, account.role, account.active) == ("clinician", "clinician", True)
    assert create_first_account(database) is None
    assert [a.username for a in list_users(database)] == [FIRST_ACCOUNT]


@pytest.mark.parametrize("active", [True, False])
def test_any_existing_account_means_no_first_account(database, active):
    save_user(database, "dr-sso", None, role="admin")
    if not active:
        users.set_user_active(database, "dr-sso", False)
    assert create_first_account(database) is None
    assert [a.username for a in list_users(database)] == ["dr-sso"]


def test_another_node_creating_it_meanwhile_is_not_an_error(database, monkeypatch):
    """The other node saves the account between this node's check and its own save."""
    real_save = users.save_user

    def other_node_first(db, username, password, **kwargs):
        real_save(db, username, "the other node's password", **kwargs)
        return real_save(db, username, password, **kwargs)

    monkeypatch.setattr(users, "save_user", other_node_first)
    assert create_first_account(database) is None
    assert authenticate(database, FIRST_ACCOUNT, "the other node's password")


def test_two_nodes_starting_at_once_create_one_account(database_target, monkeypatch):
    """Both see an empty table, both insert: the unique key lets one win, the other returns None."""
    settings, schema, _ = database_target
    nodes = [open_database(settings, schema=schema) for _ in range(2)]
    both_checked = threading.Barrier(2)
    real_save = users.save_user
    results: list[str | None] = []

    def save_after_both_checked(db, *args, **kwargs):
        both_checked.wait(timeout=30)
        return real_save(db, *args, **kwargs)

    def start(db) -> None:
        results.append(create_first_account(db))

    monkeypatch.setattr(users, "save_user", save_after_both_checked)
    threads = [threading.Thread(target=start, args=(db,)) for db in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2 and results.count(None) == 1
    [password] = [r for r in results if r is not None]
    assert authenticate(nodes[0], FIRST_ACCOUNT, password)
    for db in nodes:
        db.engine.dispose()
