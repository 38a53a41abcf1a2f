"""Open the database named by settings and bring its schema up to date with Alembic.

SQLite runs in WAL mode with synchronous=FULL (a committed row survives power loss);
PostgreSQL is used as configured. Every command that touches the database migrates on start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from scribe.config import Settings
from scribe.errors import ScribeError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The PostgreSQL advisory lock a migration holds, so nodes that start together migrate one after the other: any
# fixed 64-bit number no other application on the database uses (here the bytes of "scribe").
MIGRATION_LOCK_KEY = 0x736372696265


class DatabaseError(ScribeError):
    """The configured database cannot be reached or migrated."""

    exit_code = 5


def database_url(settings: Settings) -> str:
    return _with_driver(settings.database_url or f"sqlite:///{settings.data_dir / 'scribe.db'}")


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another database or one in memory."""
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _with_driver(url: str) -> str:
    """Plain `postgresql://` URLs use psycopg 3, the driver scribe installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for `url`; on PostgreSQL `schema` (created if missing) becomes the search path."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    url = _with_driver(url)
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if schema:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def upgrade(engine: Engine) -> None:
    """Apply pending Alembic migrations (idempotent, safe to run on every start).

    On PostgreSQL the migration's transaction first takes an advisory lock: of several nodes starting on one
    database, one migrates and the others wait, then find the schema at head (racing, one would fail on tables
    the other had just created).
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot migrate the database: {str(exc).splitlines()[0]}") from None


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()


def open_database(settings: Settings, *, schema: str | None = None, migrate: bool = True) -> Database:
    """Connect (and migrate) the configured database; a connection failure is one clear DatabaseError."""
    url = database_url(settings)
    try:
        engine = make_engine(url, schema=schema)
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot connect to the database: {str(exc).splitlines()[0]}") from None
    if migrate:
        upgrade(engine)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def rows_matched(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE run by `Session.execute` matched. For such a statement SQLAlchemy
    returns a CursorResult, which holds the count, but types it as the plain Result of any statement."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount
