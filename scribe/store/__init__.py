"""Persistence: SQLAlchemy 2 models and Alembic migrations; SQLite by default, PostgreSQL in production."""

from scribe.store.db import Database, open_database

__all__ = ["Database", "open_database"]
