"""`scribe db backup` / `scribe db restore` (SQLite): a consistent copy while another connection writes, a restore
into a fresh data directory that serves the same encounters and notes, and every refusal as a CLI message with
its exit code: a running server, an existing database without --force, files that are not scribe backups,
missing paths, and PostgreSQL (whose tools the message names)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import text

from scribe.api.app import create_app
from scribe.auth.tokens import Principal
from scribe.cli import run
from scribe.config import Settings
from scribe.encounters import create_encounter, save_transcript
from scribe.store.backup import known_revisions
from scribe.store.db import MIGRATIONS, make_engine, open_database
from scribe.transcript import Segment, Transcript
from tests.accounts import KEY, bearer, enrol

HEAD = known_revisions()[-1]
SAID = "Patient reports chest pain since Monday. Takes aspirin 81 mg daily. Blood pressure 150 over 90."


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, secret_key=KEY, note_engine="extractive")


def test_a_backup_taken_while_a_connection_writes_is_consistent(tmp_path: Path, capsys):
    data = tmp_path / "data"
    database = open_database(settings_for(data))
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE ticks (n INTEGER)"))
        connection.execute(text("CREATE TABLE tocks (n INTEGER)"))
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:  # each transaction adds the same row to both tables
        n = 0
        while not stop.is_set():
            n += 1
            with database.engine.begin() as connection:
                connection.execute(text("INSERT INTO ticks VALUES (:n)"), {"n": n})
                connection.execute(text("INSERT INTO tocks VALUES (:n)"), {"n": n})
            written.append(n)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 50:
            threading.Event().wait(0.01)
        code, out, err = cli(capsys, "db", "backup", tmp_path / "copy.db", "--data-dir", data)
    finally:
        stop.set()
        writer.join(10)
        database.engine.dispose()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "copy.db")
    assert f"migration {HEAD}" in err and "recordings" in err
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        ticks = [n for (n,) in copy.execute("SELECT n FROM ticks ORDER BY n")]
        tocks = [n for (n,) in copy.execute("SELECT n FROM tocks ORDER BY n")]
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD
    assert ticks == tocks == list(range(1, len(ticks) + 1)) and len(ticks) >= 50  # whole transactions only
    assert not (tmp_path / "copy.db-wal").exists() and not list(tmp_path.glob(".copy.db*"))


def test_a_restored_database_serves_the_same_encounters_and_notes(tmp_path: Path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    with TestClient(create_app(settings_for(first), load_asr=False)) as client:
        enrol(client.app.state.database, bearer("dr-b"))
        with client.app.state.database.session() as session, session.begin():
            encounter = create_encounter(
                session, Principal("dr-b", ("user/*.*",), 0), patient_id="pt-77", encounter_id="enc-backup-1"
            )
            save_transcript(
                session,
                encounter,
                Transcript(SAID, "en", "whisper", "base", 9.0, 1.0, [Segment(0, 0.0, 9.0, SAID, None, [])]),
                source="upload",
            )
        drafted = client.post("/v1/encounters/enc-backup-1/note", headers=bearer("dr-b"))
        assert drafted.status_code == 201, drafted.text
        note_id = drafted.json()["id"]
        originals = [
            client.get(path, headers=bearer("dr-b")).json()
            for path in ("/v1/encounters/enc-backup-1", f"/v1/notes/{note_id}", "/v1/encounters")
        ]
    code, out, err = cli(capsys, "db", "backup", tmp_path, "--data-dir", first)  # a directory: named by the time
    assert code == 0, err
    backup = Path(out.strip())
    assert backup.parent == tmp_path and backup.name.startswith("scribe-") and backup.suffix == ".db"

    code, out, err = cli(capsys, "db", "restore", backup, "--data-dir", second)
    assert code == 0, err
    assert out.strip() == str(second / "scribe.db") and f"migration {HEAD}" in err and "recordings" in err
    with TestClient(create_app(settings_for(second), load_asr=False)) as client:
        restored = [
            client.get(path, headers=bearer("dr-b")).json()
            for path in ("/v1/encounters/enc-backup-1", f"/v1/notes/{note_id}", "/v1/encounters")
        ]
    assert restored == originals and originals[1]["note"]


def test_restore_refuses_a_served_or_existing_database_unless_it_is_free_and_forced(tmp_path: Path, capsys):
    data = tmp_path / "data"
    open_database(settings_for(data)).engine.dispose()
    assert cli(capsys, "db", "backup", tmp_path / "one.db", "--data-dir", data)[0] == 0
    with TestClient(create_app(settings_for(data), load_asr=False)):
        code, _, err = cli(capsys, "db", "restore", tmp_path / "one.db", "--force", "--data-dir", data)
        assert code == 3 and "a running scribe server is using" in err and "stop it" in err
    code, _, err = cli(capsys, "db", "restore", tmp_path / "one.db", "--data-dir", data)
    assert code == 3 and "already exists; pass --force" in err
    code, _, err = cli(capsys, "db", "restore", tmp_path / "one.db", "--force", "--data-dir", data)
    assert code == 0, err


def test_an_older_backup_is_restored_and_migrated(tmp_path: Path, capsys):
    older = tmp_path / "older.db"
    engine = make_engine(f"sqlite:///{older}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, known_revisions()[-2])
    engine.dispose()
    code, _, err = cli(capsys, "db", "restore", older, "--data-dir", tmp_path / "data")
    assert code == 0, err
    assert f"migration {HEAD}" in err


def not_a_database(path: Path) -> Path:
    path.write_bytes(b"this is no database at all" * 10)
    return path


def without_revision(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id TEXT)")
    return path


def from_the_future(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path, "there is no backup file at"),
        (not_a_database, "is not a SQLite database"),
        (without_revision, "is not a scribe database"),
        (from_the_future, "is at migration 9999, which this scribe does not know"),
    ],
)
def test_restore_refuses_what_is_not_a_scribe_backup(tmp_path: Path, capsys, make, message):
    code, out, err = cli(capsys, "db", "restore", make(tmp_path / "backup.db"), "--data-dir", tmp_path / "data")
    assert code == 3 and message in err and out == ""
    assert not (tmp_path / "data" / "scribe.db").exists()


def test_backup_refuses_bad_paths_with_a_message(tmp_path: Path, capsys):
    data = tmp_path / "data"
    code, _, err = cli(capsys, "db", "backup", tmp_path / "copy.db", "--data-dir", data)
    assert code == 3 and "there is no database at" in err
    open_database(settings_for(data)).engine.dispose()
    code, _, err = cli(capsys, "db", "backup", tmp_path / "missing" / "copy.db", "--data-dir", data)
    assert code == 3 and "directory" in err and "does not exist" in err
    (tmp_path / "copy.db").write_text("an older backup")
    code, _, err = cli(capsys, "db", "backup", tmp_path / "copy.db", "--data-dir", data)
    assert code == 3 and "already exists" in err and (tmp_path / "copy.db").read_text() == "an older backup"
    assert cli(capsys, "db", "backup", tmp_path / "copy.db", "--force", "--data-dir", data)[0] == 0
    code, _, err = cli(capsys, "db", "backup", data / "scribe.db", "--force", "--data-dir", data)
    assert code == 3 and "cannot replace the database it copies" in err


@pytest.mark.parametrize("action", ["backup", "restore"])
def test_postgresql_is_pointed_to_its_own_tools(tmp_path: Path, capsys, monkeypatch, action):
    monkeypatch.setenv("SCRIBE_DATABASE_URL", "postgresql://scribe@db.invalid/scribe")
    code, _, err = cli(capsys, "db", action, tmp_path / "x.db", "--data-dir", tmp_path)
    assert code == 2 and "pg_dump" in err and "pg_restore" in err and "deploy/README.md" in err
