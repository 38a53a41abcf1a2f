"""`scribe bench asr|notes|fhir|stream`: the benchmarks that print measured figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from scribe.commands.base import AsrChoice, NoteEngineChoice, UsageError, bench_app
from scribe.config import load_settings

BENCH_USER = "bench"  # whom `bench stream` mints its token for when not given one; the account must exist


@bench_app.command("asr")
def bench_asr(
    directory: Path = typer.Argument(Path("audio_samples"), help="WAV files with reference .txt (and .bundle.json)"),
    engine: AsrChoice = typer.Option("whisper", "--engine", help="whisper or medasr"),
    model: Optional[str] = typer.Option(None, "--model"),
    medasr_full_size: bool = typer.Option(True, help="Also time a full-size random-weight MedASR (needs scribe[gpu])."),
) -> None:
    """WER with and without records, drug-name recall, real-time factor, load time, peak RSS."""
    from scribe.bench.asr import print_table, run_asr_bench

    if engine is AsrChoice.auto:
        raise UsageError("bench asr measures one engine: --engine whisper or --engine medasr")
    summary = run_asr_bench(directory, load_settings(), engine=engine.value, model=model, medasr_full_size=medasr_full_size)
    print_table(summary, sys.stderr)
    print(json.dumps(summary, indent=2))


@bench_app.command("notes")
def bench_notes_command(
    source: Path = typer.Argument(..., help="ACI-BENCH CSV (dialogue + note) or a directory of transcripts",
                                  show_default=False),
    engine: NoteEngineChoice = typer.Option("extractive", "--engine", help="Note engine to measure."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items."),
) -> None:
    """ROUGE-1/2/L against reference notes, recall of meds+doses, vitals, allergies, problems, grounding, latency."""
    from scribe.bench.notes import bench_notes, print_table
    from scribe.notes.registry import choose_note_engine, load_note_engine

    settings = load_settings()
    note_engine = load_note_engine(choose_note_engine(engine.value, settings), settings)
    result = bench_notes(source, note_engine, limit=limit)
    print_table(result, sys.stderr)
    print(json.dumps(result, indent=2))


@bench_app.command("fhir")
def bench_fhir_command(
    notes: int = typer.Option(10_000, "--notes", min=1, help="Notes to store before measuring."),
    patients: int = typer.Option(1_000, "--patients", min=1, help="Patients the notes are spread over."),
    rounds: int = typer.Option(100, "--rounds", min=1, help="Times each search is run."),
    database_url: Optional[str] = typer.Option(None, "--database-url",
                                               help="Measure on this database (e.g. PostgreSQL) [default: SQLite]"),
) -> None:
    """FHIR search latency (p50/p95 per checklist search) on a real server holding N notes."""
    from scribe.bench.fhir import bench_fhir, print_fhir_table

    result = bench_fhir(notes, patients, rounds, database_url=database_url, progress=sys.stderr)
    print_fhir_table(result, sys.stderr)
    print(json.dumps(result, indent=2))


@bench_app.command("stream")
def bench_stream(
    url: str = typer.Option("ws://127.0.0.1:8000", "--url", help="Base websocket URL of a running scribe serve."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Largest number of simultaneous sessions."),
    directory: Path = typer.Argument(Path("audio_samples"), help="WAV files with reference .txt"),
    token: Optional[str] = typer.Option(None, "--token", envvar="SCRIBE_TOKEN",
                                        help="Bearer token [default: minted with this machine's signing key "
                                             f"for the user {BENCH_USER!r}, which must exist]"),
    records: bool = typer.Option(False, "--records",
                                 help="Attach each sample's NAME.bundle.json to its encounter first (records' hotwords)."),
) -> None:
    """Real-time sessions at N = 1..concurrency: partial/final latency p50/p95, WER, largest N that keeps up."""
    from scribe.bench.stream import print_stream_table, run_stream_bench

    if token is None:
        from scribe.auth.signing_key import signing_key
        from scribe.auth.subjects import mint_token
        from scribe.store.db import open_database

        settings = load_settings()
        database = open_database(settings)
        token = mint_token(database, signing_key(settings, database), BENCH_USER, ttl_s=3600,
                           audience=settings.public_url)
    summary = run_stream_bench(url, token, directory, concurrency, records=records)
    print_stream_table(summary, sys.stderr)
    print(json.dumps(summary, indent=2))
