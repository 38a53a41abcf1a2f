"""`scribe db backup` / `scribe db restore` for the SQLite database of a single node.

A backup is SQLite's online backup API (`sqlite3.Connection.backup`): one read transaction, so the
copy is consistent while the server runs and writes (in WAL mode readers never block writers). It is
written beside its target and renamed into place, checked (`quick_check`) and made a single
self-contained file (journal mode DELETE).

A restore refuses what it cannot vouch for: a file that is not a scribe database at a migration
revision this scribe knows (one a newer scribe made is refused, an older one is migrated), an existing
database without `force`, and a database a running `scribe serve` holds: the app holds a shared lock on
`<database>.serving` while it serves, and a restore needs it exclusively. The restore itself goes through
the backup API into the configured file, so no reader ever sees half a file, then migrates it.

PostgreSQL is backed up with its own tools (`pg_dump` / `pg_restore`, deploy/README.md); the
recordings directory (SCRIBE_AUDIO_DIR) is plain files and is backed up alongside either database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from scribe.config import Settings
from scribe.errors import BadInputError, ConfigError, ConflictError
from scribe.store.db import MIGRATIONS, database_url, open_database, sqlite_file

log = logging.getLogger("scribe.store")
SQLITE_HEADER = b"SQLite format 3\x00"
POSTGRES_BACKUP = (
    "the database is PostgreSQL (SCRIBE_DATABASE_URL): back it up with `pg_dump --format=custom` "
    "and restore it with `pg_restore --clean --if-exists`, with scribe stopped for a restore; "
    "deploy/README.md, section Backup and restore, has the commands"
)


@dataclass(frozen=True)
class BackupResult:
    """The file written (the backup, or the restored database) and the migration revision it holds."""

    path: Path
    revision: str


def sqlite_database_path(settings: Settings) -> Path | None:
    """The configured database's file, or None when it is not a SQLite file (PostgreSQL, in memory)."""
    return sqlite_file(database_url(settings))


def hold_serving_lock(settings: Settings) -> IO[bytes] | None:
    """Mark the configured SQLite database as served by this process until the returned file is closed (or the
    process ends): `restore_database` refuses it meanwhile. None for a database that is not a SQLite file."""
    path = sqlite_database_path(settings)
    if path is None:
        return None
    handle: IO[bytes] | None = None
    try:
        handle = open(_serving_lock_path(path), "ab")
        fcntl.flock(handle, fcntl.LOCK_SH)  # servers share it; only a restore wants it alone
    except OSError as exc:  # serving goes on; only the restore's check is lost
        if handle is not None:
            handle.close()
        log.warning("cannot mark the database as served (a restore will not see this server): %s", exc.strerror)
        return None
    return handle


def backup_database(settings: Settings, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the configured SQLite database to `target` (a file, or a directory to hold `scribe-<UTC time>.db`)."""
    source = _sqlite_path_or_refuse(settings)
    if not source.is_file():
        raise BadInputError(f"there is no database at {source} to back up")
    target = target.expanduser()
    if target.is_dir():
        target = target / f"scribe-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.db"
    if not target.parent.is_dir():
        raise BadInputError(f"cannot write the backup: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise BadInputError(f"cannot write the backup: directory {target.parent} is not writable")
    if target.exists() and not overwrite:
        raise BadInputError(f"{target} already exists; choose another name or pass --force to replace it")
    if target.resolve() == source.resolve():
        raise BadInputError("the backup cannot replace the database it copies")
    revision = database_revision(source)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with _connect(source, read_only=True) as origin, _connect(partial) as copy:
            origin.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            _check_integrity(copy, partial)
        os.replace(partial, target)
    except OSError as exc:
        raise BadInputError(f"cannot write the backup {target}: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise BadInputError(f"cannot back up {source}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(target, revision)


def restore_database(settings: Settings, source: Path, *, force: bool = False) -> BackupResult:
    """Make the backup `source` the configured SQLite database, then migrate it to this scribe's schema."""
    target = _sqlite_path_or_refuse(settings)
    source = source.expanduser()
    if not source.is_file():
        raise BadInputError(f"there is no backup file at {source}")
    revision = database_revision(source)
    known = known_revisions()
    if revision not in known:
        raise BadInputError(
            f"{source} is at migration {revision}, which this scribe does not know (it knows "
            f"{', '.join(known)}); restore it with the scribe release that made it"
        )
    if target.exists() and target.resolve() == source.resolve():
        raise BadInputError("the backup is the configured database itself")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = open(_serving_lock_path(target), "ab")
    except OSError as exc:
        raise BadInputError(f"cannot restore into {target.parent}: {exc.strerror or exc}") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(f"a running scribe server is using {target}; stop it before restoring") from None
        if target.exists() and not force:
            raise ConflictError(
                f"{target} already exists; pass --force to replace it with the backup "
                "(back it up first if it may still be needed)"
            )
        try:
            with _connect(source, read_only=True) as backup, _connect(target) as database:
                backup.backup(database)
        except sqlite3.Error as exc:
            raise BadInputError(f"cannot restore {source} into {target}: {exc}") from None
        open_database(settings).engine.dispose()  # an older backup is brought up to this scribe's schema
    return BackupResult(target, database_revision(target))


def database_revision(path: Path) -> str:
    """The migration revision of the scribe database at `path`; BadInputError for anything else."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header != SQLITE_HEADER:
        raise BadInputError(f"{path} is not a SQLite database")
    try:
        with _connect(path, read_only=True) as connection:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        raise BadInputError(f"{path} is not a scribe database (it has no migration revision)") from None
    if len(rows) != 1:
        raise BadInputError(f"{path} is not a scribe database (it has {len(rows)} migration revisions)")
    return str(rows[0][0])


def known_revisions() -> list[str]:
    """Every migration revision this scribe ships, oldest first."""
    from alembic.script import ScriptDirectory

    return [script.revision for script in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]


def _sqlite_path_or_refuse(settings: Settings) -> Path:
    path = sqlite_database_path(settings)
    if path is None:
        raise ConfigError(POSTGRES_BACKUP)
    return path


def _serving_lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".serving")


class _connect:
    """A sqlite3 connection that is closed (not only committed) on leaving the block; busy for up to 10 s."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        uri = f"{path.absolute().as_uri()}?mode=ro" if read_only else str(path)
        self.connection = sqlite3.connect(uri, uri=read_only, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *_: object) -> None:
        self.connection.close()


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA quick_check").fetchone()
    if not result or result[0] != "ok":
        raise BadInputError(f"the copy at {path} failed SQLite's integrity check: {result[0] if result else '?'}")
