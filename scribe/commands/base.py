"""What every command group shares: the Typer apps (every command takes --data-dir), the stderr voice, the choices.

stdout carries only results; progress, engine choice and warnings go to stderr. Exit codes
(docs/interfaces.md): 0 ok, 2 usage, 3 bad input, 4 engine/model unavailable, 5 internal error.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from scribe.config import load_settings
from scribe.errors import ScribeError

DATA_DIR_OPTION = inspect.Parameter(
    "data_dir",
    inspect.Parameter.KEYWORD_ONLY,
    annotation=Path | None,
    default=typer.Option(
        None,
        "--data-dir",
        show_default=False,
        help="Overrides SCRIBE_DATA_DIR: the database, signing key, models and audio.",
    ),
)


@contextmanager
def data_dir_override(data_dir: Path | None) -> Iterator[None]:
    """SCRIBE_DATA_DIR is `data_dir` while the command runs (settings are read from the environment), then as before."""
    if data_dir is None:
        yield
        return
    previous = os.environ.get("SCRIBE_DATA_DIR")
    os.environ["SCRIBE_DATA_DIR"] = str(data_dir.expanduser().absolute())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SCRIBE_DATA_DIR", None)
        else:
            os.environ["SCRIBE_DATA_DIR"] = previous


def with_data_dir(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with the --data-dir option: a server, its tokens and its accounts share one directory."""
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def in_data_dir(*args: Any, data_dir: Path | None = None, **kwargs: Any) -> Any:
        with data_dir_override(data_dir):
            return command(*args, **kwargs)

    in_data_dir.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), DATA_DIR_OPTION]
    )
    in_data_dir.__annotations__ = {**command.__annotations__, "data_dir": Path | None}
    return in_data_dir


class CommandGroup(typer.Typer):
    """A Typer app whose every command takes --data-dir the same way (see `with_data_dir`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            register(with_data_dir(function))
            return function

        return decorator


app = CommandGroup(
    name="scribe",
    help="On-premises clinical scribe: transcribe encounters, draft notes, serve them over FHIR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = CommandGroup(
    help="Model weights: list what is here, pull on purpose, verify checksums.", no_args_is_help=True
)
bench_app = CommandGroup(help="Benchmarks that print measured figures.", no_args_is_help=True)
db_app = CommandGroup(help="Database schema, backup and restore.", no_args_is_help=True)
token_app = CommandGroup(help="Access tokens for clinicians and integrations.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
users_app = CommandGroup(help="Local accounts: clinicians and administrators.", no_args_is_help=True)
clients_app = CommandGroup(help="SMART Backend Services clients (EHR integrations).", no_args_is_help=True)
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
