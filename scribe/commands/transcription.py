"""`scribe transcribe` and `scribe note`: recorded audio to a transcript, a transcript to a SOAP note."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from scribe.commands.base import (
    PROGRESS_MIN_SECONDS,
    AsrChoice,
    FormatChoice,
    ModeChoice,
    NoteEngineChoice,
    UsageError,
    app,
    err,
)
from scribe.config import load_settings
from scribe.errors import BadInputError


def _emit(rendered: str, destination: Path | None, label: str) -> None:
    """A result on stdout, or into its file with a line on stderr saying where (stdout carries only results)."""
    if destination is None:
        sys.stdout.write(rendered)
        sys.stdout.flush()
    else:
        destination.write_text(rendered, encoding="utf-8")
        err(f"{label} -> {destination}")


def _output_paths(files: list[Path], output: Path | None, fmt: str) -> list[Path | None]:
    """Where each input's result goes: stdout (None), the named file, or DIR/<stem>.<fmt>."""
    if output is None:
        return [None] * len(files)
    if len(files) == 1 and not output.is_dir():
        return [output]
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: with several inputs, -o must name a directory")
    output.mkdir(parents=True, exist_ok=True)
    return [output / f"{f.stem}.{fmt}" for f in files]


@app.command()
def transcribe(
    files: list[Path] = typer.Argument(
        ..., help="Audio files (WAV, FLAC, OGG/Opus, MP3, WebM, M4A).", show_default=False
    ),
    mode: ModeChoice = typer.Option(
        "encounter", "--mode", help="dictation: one clinician dictating; encounter: a conversation."
    ),
    engine: AsrChoice | None = typer.Option(None, "--engine", help="ASR engine [default: SCRIBE_ASR_ENGINE or auto]"),
    model: str | None = typer.Option(None, "--model", help="Model directory or name for the engine."),
    records: Path | None = typer.Option(
        None, "--records", help="FHIR R4 Bundle of prior records (biases recognition)."
    ),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file, or directory for several inputs."),
) -> None:
    """Transcribe recorded audio offline."""
    from scribe.asr import choose_engine, load_engine
    from scribe.audio import AudioLimits, check_audio_file, decode_audio
    from scribe.formats import render
    from scribe.records import load_records

    settings = load_settings()
    limits = AudioLimits.from_settings(settings)
    unusable = 0
    for path in files:  # before the model loads, which takes seconds
        try:
            check_audio_file(path, limits)
        except BadInputError as exc:
            err(f"error: {exc}")
            unusable += 1
    if unusable:
        raise typer.Exit(BadInputError.exit_code)
    destinations = _output_paths(files, output, fmt.value)
    context = load_records(records) if records else None
    choice = choose_engine(engine.value if engine else settings.asr_engine, mode.value, settings, model)
    asr = load_engine(choice, settings)
    err(f"ASR engine: {asr.name} ({choice.reason}); model: {asr.model}")
    failures = 0
    for path, destination in zip(files, destinations, strict=True):
        try:
            audio = decode_audio(path, limits)
            transcript = _transcribe_with_progress(asr, audio, context, label=path.name)
        except BadInputError as exc:
            err(f"error: {exc}")
            failures += 1
            continue
        _emit(render(transcript, fmt.value), destination, path.name)
    if failures:
        raise typer.Exit(BadInputError.exit_code)


def _transcribe_with_progress(asr, audio, context, label: str):
    from scribe.asr import SAMPLE_RATE

    duration = len(audio) / SAMPLE_RATE
    if duration < PROGRESS_MIN_SECONDS:
        return asr.transcribe(audio, context=context)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=duration)
        transcript = asr.transcribe(audio, context=context, progress=lambda done: bar.update(task, completed=done))
        bar.update(task, completed=duration)
    return transcript


class NoteFormatChoice(str, Enum):
    json = "json"
    html = "html"
    txt = "txt"


TRANSCRIPT_SUFFIXES = {".json", ".txt", ".text"}


@app.command()
def note(
    source: Path = typer.Argument(
        ...,
        help="Audio (transcribed first), a Transcript JSON, or a text transcript "
        "(one turn a line, optional [doctor]/[patient] labels).",
        show_default=False,
    ),
    records: Path | None = typer.Option(None, "--records", help="FHIR R4 Bundle of prior records."),
    images: list[Path] = typer.Option([], "--image", help="PNG, JPEG or DICOM image to attach (repeatable)."),
    engine: NoteEngineChoice | None = typer.Option(
        None, "--engine", help="Note engine [default: SCRIBE_NOTE_ENGINE or auto]"
    ),
    asr_engine: AsrChoice | None = typer.Option(None, "--asr-engine", help="ASR engine when SOURCE is audio."),
    mode: ModeChoice = typer.Option("encounter", "--mode", help="For audio: dictation or encounter (conversation)."),
    template: str = typer.Option("progress_note", "--template", help="Note type / template."),
    fmt: NoteFormatChoice = typer.Option("json", "--format", "-f"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file [default: stdout]."),
) -> None:
    """Draft a SOAP note in which every statement links to its evidence."""
    from scribe.notes.attachments import load_attachment
    from scribe.notes.draft import draft_note
    from scribe.notes.inputs import NoteInput, load_transcript_file
    from scribe.notes.registry import choose_note_engine
    from scribe.records import load_records
    from scribe.render import render_note

    settings = load_settings()
    context = load_records(records) if records else None
    attachments = [load_attachment(path, f"image-{i}") for i, path in enumerate(images, start=1)]
    if not source.exists():
        raise BadInputError(f"{source}: no such file")
    if source.suffix.lower() in TRANSCRIPT_SUFFIXES:
        transcript = load_transcript_file(source)
    else:
        from scribe.asr import choose_engine, load_engine
        from scribe.audio import AudioLimits, decode_audio

        audio = decode_audio(source, AudioLimits.from_settings(settings))
        choice = choose_engine(asr_engine.value if asr_engine else settings.asr_engine, mode.value, settings)
        asr = load_engine(choice, settings)
        err(f"ASR engine: {asr.name} ({choice.reason}); model: {asr.model}")
        transcript = _transcribe_with_progress(asr, audio, context, label=source.name)
    note_choice = choose_note_engine(engine.value if engine else None, settings)
    err(f"note engine: {note_choice.name} ({note_choice.reason})")
    drafted = draft_note(
        NoteInput(transcript, context, attachments), settings, engine=note_choice.name, template=template
    )
    unsupported = sum(s.support == "unsupported" for s in drafted.statements())
    conflicting = sum(s.support == "conflict" for s in drafted.statements())
    if unsupported:
        err(f"warning: {unsupported} statement(s) not supported by their evidence; review them before signing")
    if conflicting:
        err(f"warning: {conflicting} statement(s) conflict with the patient's records; review them before signing")
    if fmt is NoteFormatChoice.json:
        rendered = drafted.to_json(indent=2) + "\n"
    else:
        rendered = render_note(drafted, transcript, template=template, fmt=fmt.value)
    _emit(rendered, output, "note")
