"""Browser sessions: the cookie holds a random id, the database only its SHA-256 and a CSRF token.

A stolen database therefore yields no usable cookie, and every node can resolve any session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from scribe.auth.tokens import AuthError
from scribe.store import Database
from scribe.store.models import User, WebSession

SESSION_COOKIE = "scribe_session"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_LIFETIME_S = 12 * 3600


@dataclass(frozen=True)
class SignedIn:
    """A live session: whose it is and the CSRF token its unsafe requests must echo."""

    username: str
    display_name: str | None
    csrf_token: str
    expires_at: datetime


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def start_session(
    database: Database, username: str, display_name: str | None, lifetime_s: int = DEFAULT_LIFETIME_S
) -> tuple[str, SignedIn]:
    """A new session for `username`: (the cookie value, the session). Expired sessions are purged on the way."""
    now = datetime.now(UTC)
    session_id, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=lifetime_s)
    with database.session() as session, session.begin():
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        session.add(
            WebSession(
                id_hash=_hash(session_id),
                username=username,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return session_id, SignedIn(username, display_name, csrf_token, expires_at)


def resolve_session(database: Database, session_id: str) -> SignedIn:
    """The live session behind a cookie value; unknown, expired or a disabled user's is an AuthError."""
    with database.session() as session:
        found = session.execute(
            select(WebSession, User)
            .join(User, User.username == WebSession.username)
            .where(WebSession.id_hash == _hash(session_id))
        ).first()
    if found is None:
        raise AuthError("session unknown or signed out")
    row, user = found
    if _aware(row.expires_at) <= datetime.now(UTC):
        raise AuthError("session expired", subject=row.username)
    if not user.active:
        raise AuthError("account disabled", subject=row.username)
    return SignedIn(row.username, user.display_name, row.csrf_token, _aware(row.expires_at))


def end_session(database: Database, session_id: str) -> None:
    with database.session() as session, session.begin():
        session.execute(delete(WebSession).where(WebSession.id_hash == _hash(session_id)))


def csrf_matches(signed_in: SignedIn, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(signed_in.csrf_token.encode(), presented.encode())
