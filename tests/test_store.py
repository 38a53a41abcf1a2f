"""Schema migrations and the shared signing key, on SQLite and on the real PostgreSQL server."""

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from scribe.auth.signing_key import signing_key
from scribe.config import Settings
from scribe.store.db import MIGRATION_LOCK_KEY, DatabaseError, make_engine, open_database

PG_URL = os.environ.get("SCRIBE_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request, tmp_path, monkeypatch) -> Iterator[tuple[Settings, str | None]]:
    """Settings pointing at a fresh SQLite file, or at a schema of its own on PostgreSQL (dropped after)."""
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    if request.param == "sqlite":
        yield Settings(), None
        return
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    schema = f"scribe_test_{uuid.uuid4().hex[:12]}"
    yield Settings(database_url=PG_URL), schema
    engine = make_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def test_upgrade_creates_tables_and_is_idempotent(db_settings):
    settings, schema = db_settings
    database = open_database(settings, schema=schema)
    open_database(settings, schema=schema)  # a second start migrates nothing and fails nothing
    tables = set(inspect(database.engine).get_table_names())
    assert {
        "app_secrets",
        "stream_tickets",
        "alembic_version",
        "encounters",
        "notes",
        "note_versions",
        "audit_events",
        "outbox",
        "users",
        "clients",
        "upload_jobs",
    } <= tables
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"


def test_migrations_match_the_models(db_settings):
    """A model change without its migration fails here, not on a customer's database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import scribe.store.outbox  # noqa: F401 - the outbox table is part of the metadata
    from scribe.store.models import Base

    settings, schema = db_settings
    database = open_database(settings, schema=schema)
    with database.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == []


def test_a_migration_on_postgresql_waits_for_the_one_under_way(tmp_path):
    """Nodes starting together take turns: while another holds the migration lock, a migration creates nothing and
    waits; once it is released, the waiting one brings the schema to head."""
    from concurrent.futures import ThreadPoolExecutor

    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    schema = f"scribe_test_{uuid.uuid4().hex[:12]}"
    settings = Settings(data_dir=tmp_path, database_url=PG_URL)
    other_node = make_engine(PG_URL)
    try:
        with ThreadPoolExecutor(1) as pool, other_node.connect() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            migrating = pool.submit(open_database, settings, schema=schema)
            with pytest.raises(TimeoutError):
                migrating.result(timeout=1.5)
            assert (
                connection.execute(
                    text("SELECT to_regclass(:table)"), {"table": f'"{schema}".alembic_version'}
                ).scalar()
                is None
            )
            connection.rollback()  # the other migration ends, and its lock with its transaction
            database = migrating.result(timeout=60)
        with database.engine.connect() as migrated:
            assert migrated.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        database.engine.dispose()
    finally:
        with other_node.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        other_node.dispose()


def test_sqlite_is_durable_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    database = open_database(Settings())
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert (tmp_path / "scribe.db").is_file()


def test_signing_key_is_generated_once_and_shared(db_settings):
    settings, schema = db_settings
    databases = [open_database(settings, schema=schema) for _ in range(4)]  # four "nodes"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda d=d: keys.append(signing_key(settings, d))) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert signing_key(settings, databases[0]) == keys[0]


def test_configured_secret_key_wins(db_settings):
    settings, schema = db_settings
    configured = settings.model_copy(update={"secret_key": "k" * 40})
    assert signing_key(configured, open_database(configured, schema=schema)) == b"k" * 40


def test_unreachable_database_is_a_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    with pytest.raises(DatabaseError, match="cannot connect to the database"):
        open_database(settings)


def test_short_configured_key_is_refused(tmp_path):
    from scribe.errors import ConfigError

    settings = Settings(data_dir=tmp_path, secret_key="short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        signing_key(settings, open_database(settings))
