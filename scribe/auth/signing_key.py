"""The token signing key: SCRIBE_SECRET_KEY, or one generated once and kept in the database for every node."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from scribe.config import Settings
from scribe.errors import ConfigError
from scribe.store import Database
from scribe.store.models import AppSecret

KEY_NAME = "token-signing-key"
MIN_KEY_BYTES = 32


def signing_key(settings: Settings, database: Database) -> bytes:
    """The HS256 key. Concurrent first starts on several nodes all end up with the same stored key."""
    if settings.secret_key:
        if len(settings.secret_key.encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"SCRIBE_SECRET_KEY must be at least {MIN_KEY_BYTES} bytes")
        return settings.secret_key.encode()
    with database.session() as session:
        row = session.get(AppSecret, KEY_NAME)
        if row is not None:
            return row.value.encode()
        session.add(AppSecret(name=KEY_NAME, value=secrets.token_urlsafe(48), created_at=datetime.now(UTC)))
        try:
            session.commit()
        except IntegrityError:  # another node created it first: use theirs
            session.rollback()
        stored = session.get(AppSecret, KEY_NAME, populate_existing=True)
        assert stored is not None
        return stored.value.encode()
