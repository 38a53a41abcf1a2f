"""The `scribe` command line. Commands are thin: they parse options and call domain functions.

Each group lives in `scribe/commands/`; importing them registers them on the one Typer app.
stdout carries only results; progress, engine choice and warnings go to stderr. Exit codes
(docs/interfaces.md): 0 ok, 2 usage, 3 bad input, 4 engine/model unavailable, 5 internal error.
"""

from __future__ import annotations

import os
import sys

import typer

# Importing a group registers its commands; this order is the order of `scribe --help`.
from scribe.commands import accounts, bench, models, service, transcription  # noqa: F401, I001
from scribe.commands.base import app, err
from scribe.errors import ScribeError


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every scribe error becomes a message, never a traceback."""
    try:
        result = app(args=argv, prog_name="scribe", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err("aborted")
        return 130
    except typer.TyperException as exc:  # click's usage errors, as vendored by typer
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except ScribeError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: report, never dump a traceback on a user
        if os.environ.get("SCRIBE_DEBUG"):
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (set SCRIBE_DEBUG=1 for a traceback)")
        return 5
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
