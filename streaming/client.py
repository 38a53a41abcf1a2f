"""Python streaming client (`scribe stream`, `scribe bench stream`): sends audio, follows PROTOCOL.md.

It keeps every byte until an `ack` covers it and, when the connection drops, reconnects and
resumes from the server's `received_bytes`, so nothing is lost or sent twice. A node that shuts down
sends `reconnect` and closes with 1012: the client reconnects at once, which is no failure. A
resume the next node refuses for now (it is loading, draining, or a crashed node's lease on the
stream has not run out yet) is retried for `RESUME_PATIENCE_S`, however many tries that takes.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.encounter_audio import ENCOUNTER_ID
from scribe.errors import ScribeError
from scribe.records import load_records
from scribe.streaming.committed import normalize_word

FRAME_MS = 100
RETIMED_S = 0.5  # a partial ending on the word the last one ended on, this little later, shows no new word
RESUME_PATIENCE_S = 120.0  # refused resumes are retried this long: past a crashed node's lease (30 s by default)
RESUME_REFUSALS = ("server_busy", "already_streaming")  # a resume refused with these may succeed shortly
STREAM_PATH = re.compile(rf"(?P<prefix>.*)/v1/encounters/(?P<id>{ENCOUNTER_ID.pattern})/stream/?")


def _backoff_s(tries: int) -> float:
    """The wait before try number `tries` + 1 of a run of failed connects or refused resumes."""
    return min(0.2 * 2.0 ** min(tries, 5), 5.0)


class _Refused(Exception):
    """A resume refused for now (`RESUME_REFUSALS`): retried with backoff for `RESUME_PATIENCE_S`."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class StreamFailed(ScribeError):
    """The server refused the stream (an `error` message, whose `code` is kept) or could not be reached."""

    exit_code = 5

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StreamResult:
    transcript: dict[str, Any] | None = None
    finals: list[dict[str, Any]] = field(default_factory=list)
    partial_latencies: list[float] = field(default_factory=list)
    final_latencies: list[float] = field(default_factory=list)
    word_final_latencies: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reconnects: int = 0
    acked_bytes: int = 0


def http_base(ws_url: str) -> str:
    """The http(s) URL of the server a ws(s) URL names."""
    return "http" + ws_url.rstrip("/")[2:] if ws_url.startswith("ws") else ws_url.rstrip("/")


def stream_encounter(url: str) -> tuple[str, str] | None:
    """(server's http(s) base URL, encounter id) of ws(s)://HOST[:PORT][/PREFIX]/v1/encounters/ID/stream, else None."""
    parts = urlsplit(url)
    match = STREAM_PATH.fullmatch(parts.path)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or match is None:
        return None
    return http_base(f"{parts.scheme}://{parts.netloc}{match['prefix']}"), match["id"]


async def prepare_encounter(
    base_url: str, token: str | None, encounter_id: str, *, bundle: Path | None = None, mode: str | None = None
) -> None:
    """Create the encounter over REST before streaming, unless it exists already (409): in `mode` (which picks the
    server's engine: a dictation may stream with MedASR), for the bundle's patient, whose records are then
    attached so the stream decodes with their hotwords. An existing encounter of another mode is refused."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    created: dict[str, Any] = {"id": encounter_id}
    if bundle is not None:
        created["patient"] = {"id": load_records(bundle).patient_id}  # a bad bundle is refused here, before sending
    if mode is not None:
        created["mode"] = mode
    try:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:

            async def call(method: str, path: str, accepted: tuple[int, ...], **kwargs: Any) -> httpx.Response:
                response = await http.request(method, path, **kwargs)
                if response.status_code not in accepted:
                    raise StreamFailed(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
                return response

            exists = (await call("POST", "/v1/encounters", (201, 409), json=created)).status_code == 409
            if exists and mode is not None:
                current = (await call("GET", f"/v1/encounters/{encounter_id}", (200,))).json().get("mode")
                if current != mode:
                    raise StreamFailed(
                        f"encounter {encounter_id} exists in {current} mode, not {mode}; "
                        "a mode never changes: stream into a new encounter"
                    )
            if bundle is not None:
                await call(
                    "POST",
                    f"/v1/encounters/{encounter_id}/records",
                    (201,),
                    content=bundle.read_bytes(),
                    headers={"Content-Type": "application/fhir+json"},
                )
    except httpx.HTTPError as exc:
        raise StreamFailed(f"cannot prepare the encounter at {base_url}: {exc}") from None


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive: never outside the values measured), to the millisecond; None without values."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


def word_ends(segment: dict[str, Any]) -> list[float]:
    """When each word of a final segment was spoken (its end, seconds of audio); a segment without word times
    counts each word of its text at the segment's end (a lower bound on how long it waited)."""
    words = segment.get("words") or []
    if words:
        return [float(w["end"]) for w in words]
    return [float(segment["end"])] * len(str(segment.get("text", "")).split())


def pcm16(audio: np.ndarray) -> bytes:
    scaled: np.ndarray = np.clip(audio, -1.0, 1.0) * 32767
    return scaled.astype("<i2").tobytes()


class LiveAudio:
    """Audio captured so far from a live source (a microphone); grows until `close`.

    Everything captured stays here until the stream is done, so a reconnect can resend from
    whatever offset the server reports.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self._more = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        self.data += chunk
        self._more.set()

    def close(self) -> None:
        self.closed = True
        self._more.set()

    async def wait(self) -> None:
        await self._more.wait()
        self._more.clear()


async def stream_pcm(
    url: str,
    pcm: bytes | LiveAudio,
    *,
    sample_rate: int = SAMPLE_RATE,
    token: str | None = None,
    realtime: bool = False,
    frame_ms: int = FRAME_MS,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    max_reconnects: int = 5,
    connect: Callable[..., Any] | None = None,
) -> StreamResult:
    """Stream 16-bit mono PCM (a whole recording, or LiveAudio as it is captured); returns the
    `done` transcript and latency samples.

    Latency is measured against the audio clock: a message about audio time t that arrives
    at wall time w, for a stream started at wall time t0 and paced in real time, is w - t0 - t.
    A final gives one `final_latencies` sample (t: its segment's end) and one `word_final_latencies`
    sample per word (t: that word's end): how long each word spoken stayed provisional. Only
    `realtime` streams record it: unpaced audio runs ahead of the wall clock, and w - t0 - t
    would measure nothing (it goes negative). `on_message` sees every server message, each `ready` too.
    """
    import websockets

    connect = connect or websockets.connect
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    bytes_per_ms = sample_rate * 2 // 1000
    frame_bytes = bytes_per_ms * frame_ms
    result = StreamResult()
    seen_final_ids: set[int] = set()
    heard_until, heard_word = float("-inf"), ""  # the furthest word a partial has shown: its end and its text
    t0 = time.monotonic()
    attempt = 0
    resuming = False  # a `ready` came: the stream has begun, so a later refusal is a resume to retry
    refused_since: float | None = None  # when the current run of refused resumes began
    refusals = 0  # in that run: its backoff
    while True:
        moved = False  # the server said `reconnect` (its node shuts down): reconnect at once
        try:
            async with connect(url, additional_headers=headers, max_size=2**24, open_timeout=30) as ws:
                await ws.send(
                    json.dumps({"type": "start", "sample_rate": sample_rate, "encoding": "pcm_s16le", "channels": 1})
                )
                ready = json.loads(await ws.recv())
                if ready.get("type") == "error":
                    if resuming and ready.get("code") in RESUME_REFUSALS:
                        raise _Refused(str(ready.get("message")), str(ready.get("code")))
                    raise StreamFailed(
                        f"server refused the stream: {ready.get('code')}: {ready.get('message')}",
                        str(ready.get("code")),
                    )
                offset = int(ready["received_bytes"])
                resuming, refused_since, refusals, attempt = True, None, 0, 0  # failures count in a row
                if on_message:
                    on_message(ready)

                async def send_audio(position: int) -> None:
                    source = pcm if isinstance(pcm, LiveAudio) else None
                    data = pcm.data if isinstance(pcm, LiveAudio) else pcm
                    while True:
                        ended = source is None or source.closed
                        # live audio goes out in whole frames; only the very last one may be short
                        while len(data) - position >= frame_bytes or (ended and position < len(data)):
                            chunk = bytes(data[position : position + frame_bytes])
                            if realtime:
                                due = t0 + (position + len(chunk)) / bytes_per_ms / 1000
                                await asyncio.sleep(max(0.0, due - time.monotonic()))
                            await ws.send(chunk)
                            position += len(chunk)
                        if ended:
                            break
                        assert source is not None  # not ended: live audio
                        await source.wait()
                    await ws.send(json.dumps({"type": "stop"}))

                sender = asyncio.create_task(send_audio(offset))
                try:
                    async for raw in ws:
                        message = json.loads(raw)
                        kind = message.get("type")
                        now = time.monotonic()
                        if kind == "partial" and message.get("text"):
                            end, word = float(message["end"]), normalize_word(message["text"].split()[-1])
                            if end > heard_until:
                                if realtime and (word != heard_word or end - heard_until >= RETIMED_S):  # else re-timed
                                    result.partial_latencies.append(now - t0 - end)
                                heard_until, heard_word = end, word
                        elif kind == "final":
                            segment = message["segment"]
                            if segment["id"] not in seen_final_ids:
                                seen_final_ids.add(segment["id"])
                                result.finals.append(segment)
                                if realtime:
                                    result.final_latencies.append(now - t0 - float(segment["end"]))
                                    result.word_final_latencies.extend(now - t0 - end for end in word_ends(segment))
                        elif kind == "ack":
                            result.acked_bytes = int(message["received_bytes"])
                        elif kind == "warning":
                            result.warnings.append(str(message.get("code")))
                        elif kind == "reconnect":
                            moved = True
                        elif kind == "error":
                            raise StreamFailed(
                                f"server error {message.get('code')}: {message.get('message')}",
                                str(message.get("code")),
                            )
                        if on_message:
                            on_message(message)
                        if kind == "done":
                            result.transcript = message["transcript"]
                            await sender
                            return result
                    raise ConnectionError("the server closed the stream before done")
                finally:
                    sender.cancel()
        except StreamFailed:
            raise
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException, _Refused) as exc:
            result.reconnects += 1
            if moved:  # sent elsewhere after a `ready`: not a failure, and no reason to wait
                continue
            if isinstance(exc, _Refused):  # the resume will be taken: a node restarts, a dead node's lease runs out
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > RESUME_PATIENCE_S:
                    raise StreamFailed(
                        f"resume refused for {RESUME_PATIENCE_S:.0f} s: {exc.code}: {exc}", exc.code
                    ) from None
                refusals += 1
                await asyncio.sleep(_backoff_s(refusals))
                continue
            attempt += 1
            if attempt > max_reconnects:
                raise StreamFailed(f"connection lost and {max_reconnects} reconnects failed: {exc}") from None
            await asyncio.sleep(_backoff_s(attempt))
