"""`scribe bench fhir`: seeds notes, serves them from a real server process, times every checklist search."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from scribe.bench.fhir import SEARCHES
from scribe.cli import run
from scribe.store.db import make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.slow  # every test seeds notes and serves them from a `scribe serve` subprocess


def bench(capsys, *extra: str) -> dict:
    code = run(["bench", "fhir", "--notes", "40", "--patients", "4", "--rounds", "2", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "p95 ms" in err and "seeded 40 notes over 4 patients" in err
    return json.loads(out)


def check(result: dict, database: str) -> None:
    assert result["notes"] == 40 and result["database"] == database
    assert set(result["searches"]) == set(SEARCHES)
    for name, figures in result["searches"].items():
        assert figures["requests"] == 2 and 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
        if name == "patient+category+date":
            assert figures["mean_matches"] >= 0  # a random four-month window may hold none of a patient's notes
        elif name != "read":
            assert figures["mean_matches"] >= 1  # the note searched for, or its patient's notes
    assert result["overall"]["requests"] == 2 * len(SEARCHES)


def test_sqlite(capsys, settings):
    check(bench(capsys), "sqlite")


def test_postgresql_in_a_schema_of_its_own_dropped_afterwards(capsys, settings):
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    engine = make_engine(PG_URL)
    with engine.connect() as connection:
        public_before = connection.execute(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        ).scalar()
    result = bench(capsys, "--database-url", PG_URL)
    check(result, "postgresql")
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"), {"s": result["schema"]}
        ).scalar()
        public_after = connection.execute(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        ).scalar()
    engine.dispose()
    assert result["schema"].startswith("scribe_bench_") and left == 0
    assert public_after == public_before  # a site's own tables are never touched


def test_an_unreachable_database_is_a_clear_error(capsys, settings):
    code = run(["bench", "fhir", "--notes", "1", "--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    out, err = capsys.readouterr()
    assert code == 5 and out == ""
    assert "cannot connect to the database" in err and "Traceback" not in err
