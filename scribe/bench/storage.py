"""`scribe bench storage`: what a streamed minute of audio and a note leave in the database and the audio store.

The real app runs in this process (uvicorn on a loopback port, SQLite in a temporary data directory, or a
PostgreSQL schema of its own that is dropped afterwards). For each WAV a clinician's client would: create the
encounter and attach the sample's records (phase `encounter`), stream the audio through the websocket route
with the bundled Whisper, at full speed or paced in real time (`stream`), then draft the note with the extractive
engine, sign it and read it through FHIR (`note`). Around every phase the rows of each table, the database's bytes
and the bytes under the audio directory are counted, and hooks on the app's engine count the statements that
write and the transactions that committed a write. Figures are per streamed minute and per stream (the `stream`
phase), per encounter and per note.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import websockets
from sqlalchemy import Engine, event, func, select, text

from scribe.audio import SAMPLE_RATE, decode_audio
from scribe.bench.asr import BenchItem, discover
from scribe.bench.fhir import own_schema
from scribe.config import Settings
from scribe.store import Database, open_database
from scribe.store.models import Base
from scribe.streaming.client import StreamFailed, pcm16, prepare_encounter, stream_pcm

PHASES = ("encounter", "stream", "note")
BENCH_CLINICIAN = "bench-clinician"
BENCH_PATIENT = "bench-patient"  # the patient of a sample without records (signing needs one)
BYTES_PER_SECOND = SAMPLE_RATE * 2  # what the bench streams: 16 kHz mono s16le
WRITES = ("insert", "update", "delete")
WARM_UP_BYTES = 10 * BYTES_PER_SECOND  # of the first file, streamed once before measuring
TOKEN_TTL_S = 24 * 3600  # outlives a bench over hours of audio


@dataclass(frozen=True)
class Footprint:
    """What the service holds at one moment: rows by table, database bytes, bytes under the audio directory."""

    rows: dict[str, int]
    database_bytes: int
    audio_bytes: int


@dataclass
class PhaseTotals:
    """A phase's growth summed over every sample, with the writes it took and its wall time."""

    rows: Counter[str] = field(default_factory=Counter)
    database_bytes: int = 0
    audio_bytes: int = 0
    statements: Counter[tuple[str, str]] = field(default_factory=Counter)  # (insert|update|delete, table)
    write_transactions: int = 0
    seconds: float = 0.0

    def add(self, before: Footprint, after: Footprint, writes: WriteCounts, seconds: float) -> None:
        for table, count in after.rows.items():
            self.rows[table] += count - before.rows.get(table, 0)
        self.database_bytes += after.database_bytes - before.database_bytes
        self.audio_bytes += after.audio_bytes - before.audio_bytes
        self.statements.update(writes.statements)
        self.write_transactions += writes.transactions
        self.seconds += seconds

    def per(self, divisor: float) -> dict[str, Any]:
        """Every figure divided by `divisor` (minutes, encounters or notes)."""
        rows = {table: round(n / divisor, 2) for table, n in sorted(self.rows.items()) if n}
        return {
            "rows": rows,
            "rows_total": round(sum(self.rows.values()) / divisor, 2),
            "database_bytes": round(self.database_bytes / divisor),
            "audio_bytes": round(self.audio_bytes / divisor),
            **{
                f"{kind}s": round(sum(n for key, n in self.statements.items() if key[0] == kind) / divisor, 2)
                for kind in WRITES
            },
            "statements": {
                f"{kind} {table}": round(n / divisor, 2) for (kind, table), n in sorted(self.statements.items())
            },
            "write_transactions": round(self.write_transactions / divisor, 2),
        }


@dataclass
class WriteCounts:
    statements: Counter[tuple[str, str]] = field(default_factory=Counter)  # (insert|update|delete, table)
    transactions: int = 0


class WriteCounter:
    """Counts, on one engine, the INSERT/UPDATE/DELETE statements (each row of an executemany once) and the
    transactions that committed at least one of them. SQLAlchemy event hooks: nothing is timed or changed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.counts = WriteCounts()
        self._lock = threading.Lock()
        event.listen(engine, "after_cursor_execute", self._executed)
        event.listen(engine, "commit", self._committed)
        event.listen(engine, "rollback", self._rolled_back)

    def take(self) -> WriteCounts:
        """The counts since the last `take`."""
        with self._lock:
            counts, self.counts = self.counts, WriteCounts()
        return counts

    def close(self) -> None:
        event.remove(self.engine, "after_cursor_execute", self._executed)
        event.remove(self.engine, "commit", self._committed)
        event.remove(self.engine, "rollback", self._rolled_back)

    def _executed(self, connection, _cursor, statement: str, parameters, _context, executemany: bool) -> None:
        words = statement.split(None, 3)
        kind = words[0].lower() if words else ""
        if kind in WRITES:
            # INSERT INTO t / UPDATE t / DELETE FROM t: the table is the second word, or the third
            table = (words[1] if kind == "update" else words[2] if len(words) > 2 else "?").strip('"')
            with self._lock:
                self.counts.statements[kind, table] += len(parameters) if executemany else 1
            connection.info["scribe_bench_wrote"] = True

    def _committed(self, connection) -> None:
        if connection.info.pop("scribe_bench_wrote", False):
            with self._lock:
                self.counts.transactions += 1

    def _rolled_back(self, connection) -> None:
        connection.info.pop("scribe_bench_wrote", None)


def footprint(database: Database, audio_dir: Path) -> Footprint:
    """Rows of every scribe table, the database's size (SQLite: the file once the WAL is checkpointed into it;
    PostgreSQL: tables with their indexes and TOAST in the current schema) and the audio directory's bytes."""
    with database.engine.connect() as connection:
        rows = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }
        if connection.dialect.name == "sqlite":
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            main = connection.execute(text("PRAGMA database_list")).first()
            assert main is not None  # SQLite always lists its main database, first
            size = Path(main[2]).stat().st_size
        else:
            size = connection.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')"
                )
            ).scalar_one()
    audio = sum(path.stat().st_size for path in audio_dir.rglob("*") if path.is_file()) if audio_dir.exists() else 0
    return Footprint(rows, int(size), audio)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread of this process; yields its http base URL."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    # No keepalive pings (here nor in `_stream`): audio sent faster than real time waits in the socket while the
    # session reads it only as fast as it decodes, and a ping or pong would wait behind it past any timeout.
    server = uvicorn.Server(
        uvicorn.Config(app, access_log=False, log_config=None, lifespan="on", ws_ping_interval=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="bench-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            listener.close()
            raise RuntimeError("the in-process server did not start (its log says why)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def bench_storage(
    directory: Path,
    asr_settings: Settings,
    *,
    database_url: str | None = None,
    rounds: int = 1,
    realtime: bool = False,
    joined: bool = False,
    progress: IO[str] | None = None,
) -> dict[str, Any]:
    """Run every sample of `directory` through the service `rounds` times and return the per-minute, per-stream,
    per-encounter and per-note figures. More rounds: less of the database's page-sized growth steps in the
    per-unit bytes. `realtime` paces the audio as a microphone would, so the stream's lease renewals (one per
    third of the lease, in wall time) are counted too. `joined` streams all of it as one recording (with the first
    file's records), so a streamed minute carries one stream's fixed rows, as in a long encounter. `asr_settings` is
    where the bundled Whisper is (or is assembled): the machine's own data directory."""
    from scribe.api.app import create_app
    from scribe.asr import choose_engine, load_engine
    from scribe.auth.signing_key import signing_key
    from scribe.auth.subjects import mint_token
    from scribe.auth.users import save_user

    items = [(item, pcm16(decode_audio(item.audio))) for item in discover(directory)] * rounds
    if joined:
        items = [(BenchItem(directory, "", items[0][0].records), b"".join(pcm for _, pcm in items))]
    schema = f"scribe_bench_{uuid.uuid4().hex[:12]}" if database_url else None
    with tempfile.TemporaryDirectory(prefix="scribe-bench-storage-") as tmp, own_schema(database_url, schema) as url:
        whisper = load_engine(choose_engine("whisper", "encounter", asr_settings), asr_settings, serving=True)
        # everything the bench writes stays in its own places; no signed note goes out to a site's EHR
        settings = Settings(
            data_dir=Path(tmp),
            audio_root=Path(tmp) / "audio",
            secret_key="b" * 48,
            database_url=url,
            note_engine="extractive",
            asr_engine="whisper",
            ehr_fhir_url=None,
            public_url=None,
            audio_retention_days=None,
            stream_capacity=None,
        )
        measuring = open_database(settings)
        try:
            save_user(measuring, BENCH_CLINICIAN, None)
            token = mint_token(measuring, signing_key(settings, measuring), BENCH_CLINICIAN, ttl_s=TOKEN_TTL_S)
            app = create_app(settings, load_asr=False)
            with serving(app) as base:
                app.state.asr.serve(
                    {"encounter": whisper, "dictation": whisper}, {"encounter": "bench", "dictation": "bench"}
                )
                totals = _measure(app, base, token, measuring, items, realtime=realtime, progress=progress)
        finally:
            measuring.engine.dispose()
    minutes = sum(len(pcm) for _, pcm in items) / BYTES_PER_SECOND / 60
    return {
        "database": "postgresql" if database_url else "sqlite",
        "schema": schema,
        "streams": len(items),
        "rounds": rounds,
        "realtime": realtime,
        "joined": joined,
        "streamed_minutes": round(minutes, 3),
        "notes": len(items),
        "phases": {phase: {**totals[phase].per(1), "seconds": round(totals[phase].seconds, 2)} for phase in PHASES},
        "per_streamed_minute": totals["stream"].per(minutes),
        "per_stream": totals["stream"].per(len(items)),
        "per_encounter": totals["encounter"].per(len(items)),
        "per_note": totals["note"].per(len(items)),
    }


def _measure(
    app: Any,
    base: str,
    token: str,
    measuring: Database,
    items: list[tuple[BenchItem, bytes]],
    *,
    realtime: bool,
    progress: IO[str] | None,
) -> dict[str, PhaseTotals]:
    """Every item's encounter phase by phase against the served `app`, each phase's growth and writes summed."""
    totals = {phase: PhaseTotals() for phase in PHASES}
    audio_dir = app.state.settings.audio_dir
    counter = WriteCounter(app.state.database.engine)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            # a first encounter, not counted: empty tables get their first pages, caches fill
            first, pcm = items[0]
            for step in _phases(http, base, token, first, pcm[:WARM_UP_BYTES], realtime=False).values():
                step()
            counter.take()
            for n, (item, pcm) in enumerate(items):
                for phase, step in _phases(http, base, token, item, pcm, realtime=realtime).items():
                    before = footprint(measuring, audio_dir)
                    started = time.perf_counter()
                    step()
                    seconds = time.perf_counter() - started
                    totals[phase].add(before, footprint(measuring, audio_dir), counter.take(), seconds)
                if progress:
                    progress.write(
                        f"[{n + 1}/{len(items)}] {item.audio.name}: "
                        f"{len(pcm) / BYTES_PER_SECOND:.1f} s streamed, note signed\n"
                    )
    finally:
        counter.close()
    return totals


def _phases(
    http: httpx.Client, base: str, token: str, item: BenchItem, pcm: bytes, *, realtime: bool
) -> dict[str, Callable[[], None]]:
    """One encounter of a clinician's client, phase by phase, each a call still to make."""
    encounter_id = f"bench-{uuid.uuid4().hex[:12]}"
    return {
        "encounter": lambda: _open_encounter(http, base, token, encounter_id, item.records),
        "stream": lambda: _stream(base, token, encounter_id, pcm, realtime),
        "note": lambda: _note(http, encounter_id),
    }


def _open_encounter(http: httpx.Client, base: str, token: str, encounter_id: str, records: Path | None) -> None:
    """Create the encounter with the sample's records attached, as the streaming client does; without records,
    name a patient (a note is signed only for one)."""
    asyncio.run(prepare_encounter(base, token, encounter_id, bundle=records))
    if records is None:
        _expect(http.patch(f"/v1/encounters/{encounter_id}", json={"patient": {"id": BENCH_PATIENT}}), 200)


def _stream(base: str, token: str, encounter_id: str, pcm: bytes, realtime: bool) -> None:
    url = f"ws{base.removeprefix('http')}/v1/encounters/{encounter_id}/stream"
    seconds = len(pcm) / BYTES_PER_SECOND
    limit = 120 + 4 * seconds  # well past what any pace here needs: a stream that stalls ends the bench
    unpinged = functools.partial(websockets.connect, ping_interval=None)
    try:
        result = asyncio.run(
            asyncio.wait_for(stream_pcm(url, pcm, token=token, realtime=realtime, connect=unpinged), limit)
        )
    except TimeoutError:
        raise StreamFailed(f"a {seconds:.0f} s stream was not transcribed within {limit:.0f} s") from None
    if result.transcript is None:
        raise StreamFailed(f"a {seconds:.0f} s stream ended without a transcript")


def _note(http: httpx.Client, encounter_id: str) -> None:
    """Draft with the extractive engine, sign (the clinician confirms what the draft flags), read through FHIR."""
    draft = _expect(http.post(f"/v1/encounters/{encounter_id}/note", json={"engine": "extractive"}), 201)
    note_id = draft.json()["id"]
    _expect(
        http.post(
            f"/v1/notes/{note_id}/sign", json={"confirm_unsupported": True}, headers={"If-Match": draft.headers["ETag"]}
        ),
        200,
    )
    _expect(http.get(f"/fhir/DocumentReference/{note_id}"), 200)


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:200]}"
        )
    return response


def print_storage_table(result: dict[str, Any], out: IO[str]) -> None:
    pace = "in real time" if result["realtime"] else "at full speed"
    pace += ", as one recording" if result["joined"] else ""
    out.write(
        f"storage footprint on {result['database']}: {result['streams']} streams ({result['rounds']} rounds), "
        f"{result['streamed_minutes']:.2f} minutes streamed {pace}, {result['notes']} notes signed\n"
    )
    columns = (
        ("per streamed minute", result["per_streamed_minute"]),
        ("per stream", result["per_stream"]),
        ("per encounter", result["per_encounter"]),
        ("per note", result["per_note"]),
    )
    out.write(f"{'':<24}" + "".join(f"{name:>20}" for name, _ in columns) + "\n")
    tables = sorted({table for _, figures in columns for table in figures["rows"]})
    for table in tables:
        out.write(
            f"{'rows ' + table:<24}"
            + "".join(f"{figures['rows'].get(table, 0):>20.2f}" for _, figures in columns)
            + "\n"
        )
    for key, label in (
        ("rows_total", "rows, all tables"),
        ("inserts", "INSERT statements"),
        ("updates", "UPDATE statements"),
        ("deletes", "DELETE statements"),
        ("write_transactions", "write transactions"),
    ):
        out.write(f"{label:<24}" + "".join(f"{figures[key]:>20.2f}" for _, figures in columns) + "\n")
    for key, label in (("database_bytes", "database bytes"), ("audio_bytes", "audio bytes")):
        out.write(f"{label:<24}" + "".join(f"{figures[key]:>20,}" for _, figures in columns) + "\n")
    out.flush()
