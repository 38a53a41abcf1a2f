"""What every command group shares: the Typer apps, the stderr voice, the option choices.

stdout carries only results; progress, engine choice and warnings go to stderr. Exit codes
(CONTRACTS.md): 0 ok, 2 usage, 3 bad input, 4 engine/model unavailable, 5 internal error.
"""

from __future__ import annotations

import sys
from enum import Enum

import typer

from scribe.config import load_settings
from scribe.errors import ScribeError

app = typer.Typer(
    name="scribe",
    help="On-premises clinical scribe: transcribe encounters, draft notes, serve them over FHIR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model weights: list what is here, pull on purpose, verify checksums.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="Access tokens for clinicians and integrations.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
users_app = typer.Typer(help="Local accounts: clinicians and administrators.", no_args_is_help=True)
clients_app = typer.Typer(help="SMART Backend Services clients (EHR integrations).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")

PROGRESS_MIN_SECONDS = 5.0


class UsageError(ScribeError):
    exit_code = 2


def err(message: str) -> None:
    print(f"scribe: {message}", file=sys.stderr, flush=True)


class ModeChoice(str, Enum):
    dictation = "dictation"
    encounter = "encounter"


class AsrChoice(str, Enum):
    auto = "auto"
    whisper = "whisper"
    medasr = "medasr"


class FormatChoice(str, Enum):
    txt = "txt"
    json = "json"
    srt = "srt"
    vtt = "vtt"


class NoteEngineChoice(str, Enum):
    auto = "auto"
    extractive = "extractive"
    medgemma = "medgemma"
    openai = "openai"


def open_configured_database():
    """The configured database, migrated (every command that touches it migrates on start)."""
    from scribe.store.db import open_database

    return open_database(load_settings())
