"""`scribe serve`, the streaming clients (`stream`, `dictate`), `scribe db upgrade|backup|restore`,
`scribe token create`."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from scribe.commands.base import FormatChoice, ModeChoice, UsageError, app, db_app, err, token_app
from scribe.config import load_settings

if TYPE_CHECKING:
    import uvicorn

    from scribe.drain import NodeDrain

MODE_HELP = (
    "Create the encounter first as a dictation (the server streams it with MedASR when it has the "
    "weights) or a conversation (Whisper); an encounter the stream creates is a conversation."
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    asr: bool = typer.Option(True, "--asr/--no-asr", help="Load speech recognition (--no-asr: a REST/FHIR-only node)."),
) -> None:
    """Run the service: websocket ingest, REST API, FHIR API, health at /healthz.

    An ASR engine set by SCRIBE_ASR_ENGINE or SCRIBE_ASR_MODEL that cannot load or stream stops the
    server (exit 4) once it is known; with `auto`, a dictation streams with Whisper when MedASR cannot.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from scribe.api.app import create_app
    from scribe.auth.users import create_first_account
    from scribe.errors import EngineUnavailableError
    from scribe.logs import configure_logging
    from scribe.store.db import open_database

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, node_id=settings.node_id)
    listener = _listen(host, port)
    url = _browser_url(host, listener.getsockname()[1])
    database = open_database(settings)
    password = create_first_account(database)
    database.engine.dispose()
    err(f"serving on {url} (data in {settings.data_dir})")
    if password is not None:
        _announce_first_account(url, password, settings.data_dir)
    refused: list[str] = []

    def refuse(reason: str) -> None:  # a configured ASR engine cannot serve: stop rather than serve without it
        refused.append(reason)
        server.should_exit = True

    application = create_app(settings, load_asr=asr, on_asr_failure=refuse)
    server = _draining_server(
        uvicorn.Config(application, log_level=settings.log_level, access_log=False, log_config=None),
        application.state.drain,
    )
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    if refused:
        raise EngineUnavailableError(refused[0])
    if not server.started:  # the app's startup failed and uvicorn has logged why; exit as uvicorn.run does
        raise typer.Exit(STARTUP_FAILURE)
    if application.state.drain.draining:
        _exit_drained()


def _exit_drained() -> None:
    """Exit 0 at once once drained: everything is stored and every connection closed, while the interpreter's own
    teardown can outlast the orchestrator's grace (measured 3-8 s freeing the ASR runtime after a stream; an upload
    still being transcribed, whose job went back to the queue, would be waited for)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _draining_server(config: uvicorn.Config, drain: NodeDrain) -> uvicorn.Server:
    """uvicorn's Server, draining the app before uvicorn's own shutdown (which would close every websocket with a
    bare 1012 and stop answering at once): on SIGTERM or SIGINT the listener stays open while live streams finish
    their finals and move (`/healthz` says the node drains, REST is answered as usual); then uvicorn closes what is
    left within the rest of `shutdown_grace_s`. The signal is handled, not raised again: a drained node exits 0.
    A second Ctrl-C stops at once."""
    import contextlib
    import signal
    import threading

    import uvicorn
    from uvicorn.server import HANDLED_SIGNALS

    class DrainingServer(uvicorn.Server):
        async def main_loop(self) -> None:
            await super().main_loop()
            if not self.force_exit:
                await drain.run(forced=lambda: self.force_exit)
            # uvicorn types it `int | None` but hands it to asyncio.timeout(), which takes any float
            self.config.timeout_graceful_shutdown = max(0.1, drain.remaining_s())  # type: ignore[assignment]

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return DrainingServer(config)


def _listen(host: str, port: int) -> socket.socket:
    """The bound listening socket uvicorn then serves: a busy port is refused before anything is printed, and
    nothing can take the port in between."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)  # a browser opening the printed address now waits in the backlog, not refused
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use; choose another with --port") from None
        raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return listener


def _announce_first_account(url: str, password: str, data_dir: Path) -> None:
    """The first start's account, on stderr once: nobody could sign in to a new install without it."""
    import shlex

    from scribe.auth.users import FIRST_ACCOUNT

    here = f"--data-dir {shlex.quote(str(data_dir))}"
    err("first start: no account existed, so one was created. Open this in a browser and sign in:")
    err(f"    {url}")
    err(f"    username: {FIRST_ACCOUNT}")
    err(f"    password: {password}")
    err(
        "this password is shown only now. Change it with "
        f"`scribe users add {FIRST_ACCOUNT} --password-stdin --update {here}`; "
        f"add accounts with `scribe users add NAME --password-stdin {here}`"
    )


def _browser_url(host: str, port: int) -> str:
    """What a browser on this machine opens: localhost for a wildcard address, an IPv6 address in brackets."""
    shown = "localhost" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


@app.command()
def stream(
    file: Path = typer.Argument(..., help="Audio file to stream (any format scribe transcribe reads)."),
    url: str = typer.Option(..., "--url", help="ws://host:port/v1/encounters/ID/stream"),
    token: str | None = typer.Option(None, "--token", envvar="SCRIBE_TOKEN", help="Bearer token [env SCRIBE_TOKEN]"),
    realtime: bool = typer.Option(False, "--realtime", help="Send at real-time pace, as a microphone would."),
    records: Path | None = typer.Option(
        None, "--records", help="FHIR R4 Bundle of prior records, attached to the encounter first (biases recognition)."
    ),
    mode: ModeChoice | None = typer.Option(None, "--mode", help=MODE_HELP),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f", help="Format of the final transcript on stdout."),
) -> None:
    """Stream a file to a scribe server; partials live on stderr, the final transcript on stdout."""
    import asyncio

    from scribe.audio import decode_audio
    from scribe.formats import render
    from scribe.streaming.client import StreamResult, pcm16, percentile, stream_pcm
    from scribe.transcript import Transcript

    prepare = _encounter_preparation(url, token, records, mode)
    pcm = pcm16(decode_audio(file))

    async def attach_and_stream() -> StreamResult:
        await prepare()
        return await stream_pcm(url, pcm, token=token, realtime=realtime, on_message=_show_stream_message)

    result = asyncio.run(attach_and_stream())
    assert result.transcript is not None
    sys.stdout.write(render(Transcript.from_dict(result.transcript), fmt.value))
    if not realtime:  # the audio went out faster than it was spoken: the audio clock measures nothing
        err(f"latency: n/a (not paced in real time; --realtime measures it); reconnects {result.reconnects}")
        return

    def shown(values: list[float], q: int) -> str:
        value = percentile(values, q)
        return "n/a" if value is None else f"{value:.2f}s"

    err(
        f"latency (audio clock): partial p50 {shown(result.partial_latencies, 50)} "
        f"p95 {shown(result.partial_latencies, 95)}; final p50 {shown(result.final_latencies, 50)} "
        f"p95 {shown(result.final_latencies, 95)}; reconnects {result.reconnects}"
    )


@app.command()
def dictate(
    url: str = typer.Option(..., "--url", help="ws://host:port/v1/encounters/ID/stream"),
    token: str | None = typer.Option(None, "--token", envvar="SCRIBE_TOKEN", help="Bearer token [env SCRIBE_TOKEN]"),
    seconds: float | None = typer.Option(None, "--seconds", min=0.1, help="Stop after this long [default: Ctrl-C]"),
    device: str | None = typer.Option(None, "--device", help="Input device name or index (see python -m sounddevice)."),
    mode: ModeChoice | None = typer.Option(None, "--mode", help=MODE_HELP),
    fmt: FormatChoice = typer.Option("txt", "--format", "-f", help="Format of the final transcript on stdout."),
) -> None:
    """Dictate from the microphone: partials live on stderr; Ctrl-C (or --seconds) ends and prints the transcript."""
    import asyncio

    from scribe.audio import SAMPLE_RATE
    from scribe.errors import EngineUnavailableError
    from scribe.streaming.client import LiveAudio, stream_pcm

    prepare = _encounter_preparation(url, token, None, mode)
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library is missing
        raise EngineUnavailableError(f"no audio input: {exc} (install libportaudio2)") from None

    async def record_and_stream() -> dict:
        await prepare()
        loop = asyncio.get_running_loop()
        live = LiveAudio()

        def on_audio(indata, _frames, _time, status) -> None:
            loop.call_soon_threadsafe(live.append, bytes(indata))

        try:
            microphone = sounddevice.RawInputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=SAMPLE_RATE // 10,
                device=int(device) if device and device.isdigit() else device,
                callback=on_audio,
            )
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


def _encounter_preparation(
    url: str, token: str | None, records: Path | None, mode: ModeChoice | None
) -> Callable[[], Awaitable[None]]:
    """What to do over REST before streaming to `url`: create the encounter in `mode`, attach `records`; checked
    now, so a URL that names no encounter is refused before any audio is read."""
    from scribe.streaming.client import prepare_encounter, stream_encounter

    target = stream_encounter(url)
    for option, value in (("--records", records), ("--mode", mode)):
        if value is not None and target is None:
            raise UsageError(f"{option} needs --url of the form ws://HOST:PORT/v1/encounters/ID/stream")

    async def prepare() -> None:
        if target is not None and (records is not None or mode is not None):
            base_url, encounter_id = target
            await prepare_encounter(base_url, token, encounter_id, bundle=records, mode=mode.value if mode else None)

    return prepare


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


@db_app.command("backup")
def db_backup(
    path: Path = typer.Argument(..., help="File to write, or a directory to hold scribe-<UTC time>.db."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
) -> None:
    """Copy the SQLite database while scribe runs (SQLite's online backup); prints the file written.

    Back up the recordings directory (SCRIBE_AUDIO_DIR) alongside, after the database. PostgreSQL is
    backed up with pg_dump (deploy/README.md).
    """
    from scribe.store.backup import backup_database

    settings = load_settings()
    result = backup_database(settings, path, overwrite=force)
    print(result.path)
    err(f"database backed up at migration {result.revision}; back up the recordings in {settings.audio_dir} too")


@db_app.command("restore")
def db_restore(
    path: Path = typer.Argument(..., help="A backup made by `scribe db backup`."),
    force: bool = typer.Option(False, "--force", help="Replace the configured database if it exists."),
) -> None:
    """Make a backup the configured SQLite database, with scribe stopped; an older backup is then migrated.

    Refused while a scribe server uses the database, for a file that is not a scribe database at a known
    migration, and over an existing database without --force. Restore the recordings directory too.
    """
    from scribe.store.backup import restore_database

    settings = load_settings()
    result = restore_database(settings, path, force=force)
    print(result.path)
    err(f"database restored at migration {result.revision}; restore the recordings into {settings.audio_dir} too")


@token_app.command("create")
def token_create(
    sub: str = typer.Option(
        ..., "--sub", help="Subject: an existing user's name, or a registered client id (system/ scopes)."
    ),
    scope: list[str] | None = typer.Option(None, "--scope", help="Scope (repeatable) [default: user/*.*]"),
    ttl: int = typer.Option(3600, "--ttl", help="Lifetime in seconds."),
) -> None:
    """Mint a signed access token for an existing user (or, with system/ scopes, a registered client); prints only
    the token. An unknown or disabled --sub is refused (exit 3): the server would refuse its token anyway."""
    from scribe.auth.signing_key import signing_key
    from scribe.auth.subjects import mint_token
    from scribe.auth.tokens import CLINICIAN_SCOPES
    from scribe.store.db import open_database

    settings = load_settings()
    database = open_database(settings)
    print(
        mint_token(
            database,
            signing_key(settings, database),
            sub,
            tuple(scope) if scope else CLINICIAN_SCOPES,
            ttl,
            audience=settings.public_url,
        )
    )
