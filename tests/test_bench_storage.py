"""`scribe bench storage`: one short sample through the in-process service; its figures are positive and agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from scribe.cli import run
from scribe.store.db import make_engine
from tests.conftest import PG_URL, SAMPLES

pytestmark = pytest.mark.slow  # every test streams a sample through the bundled Whisper
SAMPLE = "urology_asthma"  # the shortest committed sample (10.6 s), with records
STORED_BYTES_PER_MINUTE = 16000 * 2 * 60  # the store keeps what was streamed: 16 kHz mono s16le


@pytest.fixture
def one_sample(tmp_path: Path) -> Path:
    directory = tmp_path / "samples"
    directory.mkdir()
    for suffix in (".wav", ".txt", ".bundle.json"):
        shutil.copy(SAMPLES / f"{SAMPLE}{suffix}", directory / f"{SAMPLE}{suffix}")
    return directory


def bench(capsys, directory: Path, *extra: str) -> dict:
    code = run(["bench", "storage", str(directory), *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "per streamed minute" in err and "audio bytes" in err and "Traceback" not in err
    return json.loads(out)


def check(result: dict, database: str) -> None:
    assert result["database"] == database and result["streams"] == result["notes"] == 1
    assert result["streamed_minutes"] == pytest.approx(10.6 / 60, rel=0.01)
    minute, stream = result["per_streamed_minute"], result["per_stream"]
    encounter, note = result["per_encounter"], result["per_note"]
    # audio: the stored PCM of what was streamed, plus a little bookkeeping beside it
    assert minute["audio_bytes"] == pytest.approx(STORED_BYTES_PER_MINUTE, rel=0.03)
    assert stream["audio_bytes"] == pytest.approx(minute["audio_bytes"] * result["streamed_minutes"], rel=0.01)
    assert encounter["audio_bytes"] == note["audio_bytes"] == 0
    # rows: a stream writes its transcript, its segments and its audit record; none of them per encounter or note
    assert stream["rows"]["transcripts"] == 1 and stream["rows"]["audit_events"] >= 1
    assert stream["rows"]["transcript_segments"] >= 1
    for table in ("transcripts", "transcript_segments", "audit_events"):
        assert minute["rows"][table] == pytest.approx(stream["rows"][table] / result["streamed_minutes"], rel=0.01)
    assert "transcripts" not in encounter["rows"] and "transcript_segments" not in note["rows"]
    assert encounter["rows"]["encounters"] == 1 and encounter["rows"]["attachments"] == 1  # the records bundle
    assert note["rows"]["notes"] == 1 and note["rows"]["signoffs"] == 1 and note["rows"]["note_versions"] >= 1
    assert note["rows"]["audit_events"] >= 3  # drafted, signed, read through FHIR
    for figures in (stream, encounter, note):
        # every new row came from an INSERT, and every write transaction held at least one write
        assert figures["inserts"] >= figures["rows_total"] == sum(figures["rows"].values()) > 0
        assert 0 < figures["write_transactions"] <= figures["inserts"] + figures["updates"] + figures["deletes"]
        assert figures["database_bytes"] >= 0
    assert stream["updates"] >= 2  # the stream's lease taken and let go
    phases = result["phases"]
    assert sum(phase["database_bytes"] for phase in phases.values()) > 0  # a bundle, a transcript and a note


def test_sqlite(capsys, settings, one_sample):
    check(bench(capsys, one_sample), "sqlite")


def test_postgresql_in_a_schema_of_its_own_dropped_afterwards(capsys, settings, one_sample):
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    result = bench(capsys, one_sample, "--database-url", PG_URL)
    check(result, "postgresql")
    engine = make_engine(PG_URL)
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"), {"s": result["schema"]}
        ).scalar()
    engine.dispose()
    assert result["schema"].startswith("scribe_bench_") and left == 0


def test_a_directory_without_samples_is_a_clear_error(capsys, settings, tmp_path):
    code = run(["bench", "storage", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert "no WAV file with a reference .txt" in err and "Traceback" not in err


def test_an_unreachable_database_is_a_clear_error(capsys, settings, one_sample):
    code = run(["bench", "storage", str(one_sample), "--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    out, err = capsys.readouterr()
    assert code == 5 and out == ""
    assert "cannot connect to the database" in err and "Traceback" not in err
