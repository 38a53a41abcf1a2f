"""Local accounts: clinicians and administrators who sign in with a password (or only through OIDC).

Wrong password, unknown user, disabled user and password-less account all fail with the same
message and about the same delay, so a caller cannot probe which usernames exist.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from scribe.auth.passwords import check_password_policy, hash_password, verify_password
from scribe.auth.tokens import AuthError
from scribe.errors import BadInputError
from scribe.store import Database
from scribe.store.models import User, WebSession

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
ROLES = ("clinician", "admin")
FIRST_ACCOUNT = "clinician"
SIGN_IN_FAILED = "wrong username or password"


@dataclass(frozen=True)
class Account:
    """What the rest of scribe may know about a user: never the password hash."""

    username: str
    display_name: str | None
    role: str
    active: bool
    has_password: bool


def _account(row: User) -> Account:
    return Account(row.username, row.display_name, row.role, row.active, row.password_hash is not None)


def save_user(
    database: Database,
    username: str,
    password: str | None,
    *,
    display_name: str | None = None,
    role: str | None = None,
    update: bool = False,
) -> Account:
    """Create `username` (or, with `update`, change it); `password=None` makes an OIDC-only account.

    On update, a `display_name` or `role` left as None keeps what the account had.
    """
    if not USERNAME.fullmatch(username):
        raise BadInputError("a username is 1-64 letters, digits or . _ @ - and starts with a letter or digit")
    if role is not None and role not in ROLES:
        raise BadInputError(f"role must be one of {', '.join(ROLES)}")
    if display_name is not None and not 0 < len(display_name.strip()) <= 255:
        raise BadInputError("a display name is 1-255 characters")
    if password is not None:
        check_password_policy(password)
    with database.session() as session, session.begin():
        row = session.get(User, username)
        if row is not None and not update:
            raise BadInputError(f"user {username!r} already exists (pass --update to change it)")
        if row is None:
            row = User(username=username, role=role or "clinician", active=True, created_at=datetime.now(UTC))
            session.add(row)
        elif role is not None:
            row.role = role
        if display_name is not None:
            row.display_name = display_name.strip()
        row.password_hash = hash_password(password) if password is not None else None
        session.flush()
        return _account(row)


def create_first_account(database: Database) -> str | None:
    """On a database with no account at all, create the `clinician` account and return its random password (shown
    once, so a new install can be signed in to); None once any account exists, also one another node just made."""
    with database.session() as session:
        if session.scalar(select(User.username).limit(1)) is not None:
            return None
    password = secrets.token_urlsafe(18)  # 24 characters, 144 random bits
    try:
        save_user(database, FIRST_ACCOUNT, password)
    except (SQLAlchemyError, BadInputError):  # a unique-key clash or "already exists": the other node won the race
        if find_user(database, FIRST_ACCOUNT) is None:
            raise
        return None
    return password


def find_user(database: Database, username: str) -> Account | None:
    with database.session() as session:
        row = session.get(User, username)
        return _account(row) if row is not None else None


def list_users(database: Database) -> list[Account]:
    with database.session() as session:
        return [_account(row) for row in session.scalars(select(User).order_by(User.username))]


def set_user_active(database: Database, username: str, active: bool) -> Account:
    """Enable or disable an account; disabling also ends every browser session it has."""
    with database.session() as session, session.begin():
        row = session.get(User, username)
        if row is None:
            raise BadInputError(f"no user {username!r}")
        row.active = active
        if not active:
            session.execute(delete(WebSession).where(WebSession.username == username))
        session.flush()
        return _account(row)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_password("decoy password that matches nothing")


def authenticate(database: Database, username: str, password: str) -> Account:
    """The account whose password this is; every failure is the same AuthError."""
    with database.session() as session:
        row = session.get(User, username) if USERNAME.fullmatch(username) else None
        encoded = row.password_hash if row is not None and row.password_hash else None
        matches = verify_password(password, encoded or _decoy_hash())  # same cost when there is no such user
        if row is None or encoded is None or not matches or not row.active:
            raise AuthError(SIGN_IN_FAILED, subject=row.username if row is not None else None)
        return _account(row)
