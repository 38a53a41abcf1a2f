"""`scribe bench asr|notes|fhir|stream|storage`: the benchmarks that print measured figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from scribe.commands.base import AsrChoice, NoteEngineChoice, UsageError, bench_app
from scribe.config import load_settings

BENCH_USER = "bench"  # whom `bench stream` mints its token for when not given one; the account must exist


@bench_app.command("asr")
def bench_asr(
    directory: Path = typer.Argument(Path("audio_samples"), help="WAV files with reference .txt (and .bundle.json)"),
    engine: AsrChoice = typer.Option("whisper", "--engine", help="whisper or medasr"),
    model: str | None = typer.Option(None, "--model"),
    medasr_full_size: bool = typer.Option(True, help="Also time a full-size random-weight MedASR (needs scribe[gpu])."),
    baseline: bool = typer.Option(True, help="Also run plain faster-whisper (beam 5, same weights and threads)."),
    ablations: bool = typer.Option(
        False,
        help="Also switch scribe's decoding choices off one at a time, run it on "
        "one thread, and decode the baseline other ways.",
    ),
) -> None:
    """WER with and without records, drug and critical-term recall, real-time factor, load time, peak RSS.

    With Whisper, plain faster-whisper runs on the same files in the same run, and the ratios are printed.
    """
    from scribe.bench.asr import print_table, run_asr_bench

    if engine is AsrChoice.auto:
        raise UsageError("bench asr measures one engine: --engine whisper or --engine medasr")
    summary = run_asr_bench(
        directory,
        load_settings(),
        engine=engine.value,
        model=model,
        medasr_full_size=medasr_full_size,
        baseline=baseline,
        ablations=ablations,
    )
    print_table(summary, sys.stderr)
    print(json.dumps(summary, indent=2))


@bench_app.command("notes")
def bench_notes_command(
    source: Path = typer.Argument(
        ..., help="ACI-BENCH CSV (dialogue + note) or a directory of transcripts", show_default=False
    ),
    engine: NoteEngineChoice = typer.Option("extractive", "--engine", help="Note engine to measure."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N items."),
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
    database_url: str | None = typer.Option(
        None, "--database-url", help="Measure on this database (e.g. PostgreSQL) [default: SQLite]"
    ),
) -> None:
    """FHIR search latency (p50/p95 per checklist search) on a real server holding N notes."""
    from scribe.bench.fhir import bench_fhir, print_fhir_table

    result = bench_fhir(notes, patients, rounds, database_url=database_url, progress=sys.stderr)
    print_fhir_table(result, sys.stderr)
    print(json.dumps(result, indent=2))


@bench_app.command("storage")
def bench_storage_command(
    directory: Path = typer.Argument(Path("audio_samples"), help="WAV files with reference .txt (and .bundle.json)"),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Measure on this database (e.g. PostgreSQL), in a schema of its own dropped afterwards [default: SQLite]",
    ),
    rounds: int = typer.Option(
        1,
        "--rounds",
        min=1,
        help="Stream every file this many times (less rounding of the database's page-sized growth).",
    ),
    realtime: bool = typer.Option(
        False,
        "--realtime",
        help="Pace the audio in real time, as a microphone does, so "
        "the stream's lease renewals are counted [default: full "
        "speed].",
    ),
    joined: bool = typer.Option(
        False,
        "--joined",
        help="Stream every file (of every round) one after another as one recording, as a long encounter is streamed.",
    ),
) -> None:
    """Rows, database bytes, audio bytes and writes per streamed minute, per stream, per encounter and per note,
    through the real service."""
    from scribe.bench.storage import bench_storage, print_storage_table

    result = bench_storage(
        directory,
        load_settings(),
        database_url=database_url,
        rounds=rounds,
        realtime=realtime,
        joined=joined,
        progress=sys.stderr,
    )
    print_storage_table(result, sys.stderr)
    print(json.dumps(result, indent=2))


@bench_app.command("stream")
def bench_stream(
    url: str = typer.Option("ws://127.0.0.1:8000", "--url", help="Base websocket URL of a running scribe serve."),
    concurrency: str = typer.Option(
        "1,4,8,12", "--concurrency", help="Simultaneous sessions per round, comma-separated (e.g. 1,4,8,12)."
    ),
    directory: Path = typer.Argument(Path("audio_samples"), help="WAV files with reference .txt"),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="SCRIBE_TOKEN",
        help="Bearer token [default: minted with this machine's signing key "
        f"for the user {BENCH_USER!r}, which must exist]",
    ),
    records: bool = typer.Option(
        False, "--records", help="Attach each sample's NAME.bundle.json to its encounter first (records' hotwords)."
    ),
    offline: bool = typer.Option(
        True,
        help="Also transcribe each file offline here, first, and print its WER beside "
        "the streams' (this machine's engine settings).",
    ),
) -> None:
    """Rounds of N real-time sessions: partial/final/end-of-speech latency, WER beside offline, refusals, largest N
    that keeps up."""
    from scribe.bench.stream import offline_transcripts, print_stream_table, run_stream_bench

    rounds = _round_sizes(concurrency)
    settings = load_settings()
    if token is None:
        from scribe.auth.signing_key import signing_key
        from scribe.auth.subjects import mint_token
        from scribe.store.db import open_database

        database = open_database(settings)
        token = mint_token(
            database, signing_key(settings, database), BENCH_USER, ttl_s=3600, audience=settings.public_url
        )
    texts = offline_transcripts(directory, settings, records=records) if offline else None
    summary = run_stream_bench(url, token, directory, rounds, records=records, offline=texts)
    print_stream_table(summary, sys.stderr)
    print(json.dumps(summary, indent=2))


def _round_sizes(text: str) -> list[int]:
    """`1,4,8,12` -> [1, 4, 8, 12]; every size a positive whole number."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise UsageError(f"--concurrency {text!r}: give positive whole numbers separated by commas, e.g. 1,4,8,12")
    return sizes
