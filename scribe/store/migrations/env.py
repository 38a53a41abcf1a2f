"""Alembic environment: runs on the connection scribe hands it (no alembic.ini, no URL of its own)."""

from alembic import context

import scribe.store.outbox  # noqa: F401 - registers the outbox table on Base.metadata
from scribe.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
