"""One streaming connection from `start` to `done`: store and ack audio, run ASR passes, send results.

Transport-neutral (the API adapts a websocket to `Transport`), so the whole protocol is one
piece of code whatever carries it. ASR passes run on the shared `PassScheduler`, never on
the event loop: one slow session cannot stall the others, finalising passes go first and
otherwise the session that has waited longest gets the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from scribe.asr.whisper import WhisperEngine
from scribe.records import PatientContext
from scribe.transcript import Segment, Transcript, Word, join_segment_texts, shifted as shift_segment
from streaming import protocol
from streaming.audio_store import AudioStoreError, EncounterAudio, StoredFormat
from streaming.levels import InputLevels
from streaming.protocol import AudioFormat, ProtocolError, StartMessage, StopMessage, StreamConverter
from streaming.scheduler import PassScheduler
from streaming.whisper_stream import StreamUpdate, WhisperStream

log = logging.getLogger("scribe.streaming")

MAX_BACKLOG_S = 30.0  # audio waiting for ASR before the reader pauses (TCP then slows the client)


class ClientGone(Exception):
    """The client closed the connection without `stop`: acknowledged audio is kept for a resume."""


class Transport(Protocol):
    async def receive(self) -> str | bytes | None: ...  # None: the client went away
    async def send(self, message: dict) -> None: ...
    async def close(self, code: int) -> None: ...


@dataclass
class SessionConfig:
    audio_root: Path
    max_audio_seconds: float
    idle_timeout_s: float = protocol.DEFAULT_IDLE_TIMEOUT_S


def _segment_from_dict(data: dict) -> Segment:
    words = [Word(w["word"], w["start"], w["end"], w.get("probability")) for w in data.get("words") or []]
    return Segment(data["id"], data["start"], data["end"], data["text"], data.get("speaker"), words)


class StreamingSession:
    def __init__(self, encounter_id: str, owner: str, transport: Transport, engine: WhisperEngine,
                 scheduler: PassScheduler, config: SessionConfig, context: PatientContext | None = None,
                 on_done: Callable[[Transcript], Awaitable[None]] | None = None) -> None:
        self.encounter_id = encounter_id
        self.owner = owner
        self.transport = transport
        self.engine = engine
        self.scheduler = scheduler
        self.config = config
        self.context = context
        self.on_done = on_done  # runs before `done` is sent (the service persists the transcript there)
        self.store: EncounterAudio | None = None
        self.levels: InputLevels | None = None  # made at `start`, when the sample rate is known
        self._send_lock = asyncio.Lock()
        self._audio_ready = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._asr_error: BaseException | None = None
        self._processing_s = 0.0

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            await self.transport.send(message)

    async def fail(self, exc: ProtocolError) -> None:
        await self.send(protocol.error(exc))
        await self.transport.close(exc.close_code)

    async def _next_message(self) -> str | bytes | None:
        try:
            return await asyncio.wait_for(self.transport.receive(), timeout=self.config.idle_timeout_s)
        except asyncio.TimeoutError:
            raise ProtocolError("idle_timeout", f"no message for {self.config.idle_timeout_s:g} s") from None

    async def run(self) -> None:
        """The whole connection; every protocol error ends only this connection, with its code."""
        try:
            await self._run()
        except ClientGone:
            log.info("stream closed by the client before stop; audio kept for resume")
        except ProtocolError as exc:
            await self.fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one session take the server down; no message text: PHI risk
            log.error("streaming session failed: %s", type(exc).__name__)
            await self.fail(ProtocolError("internal_error", "the server failed; reconnect and resume"))
        finally:
            if self.store is not None:
                self.store.close()

    async def _run(self) -> None:
        first = await self._next_message()
        if first is None:
            raise ClientGone
        if isinstance(first, bytes):
            raise ProtocolError("frame_before_start", "send start before any audio")
        message = protocol.parse_client_text(first)
        if isinstance(message, StopMessage):
            raise ProtocolError("stop_before_start", "send start before stop")
        fmt = message.format
        self.store = await asyncio.to_thread(self._open_store, fmt)
        await self.send(protocol.ready(self.store.received_bytes, fmt))
        stored = [_segment_from_dict(s) for s in self.store.segments()]
        for segment in stored:
            await self.send(protocol.final(segment))
        offset = stored[-1].end if stored else 0.0
        stream = WhisperStream(self.engine, context=self.context)
        converter = StreamConverter(fmt)
        next_id = stored[-1].id + 1 if stored else 0
        resumed = self.store.read(min(self.store.received_bytes, self._byte_at(fmt, offset)))
        if resumed:  # stored audio after the last final: recognise it again, it has no final yet
            stream.feed(converter.convert(resumed))
            self._audio_ready.set()
        self.levels = InputLevels(fmt.sample_rate)
        asr = asyncio.create_task(self._asr_loop(stream, offset, next_id))
        try:
            await self._receive_audio(fmt, converter, stream)
            stream.end_input()
            self._audio_ready.set()
            await asr
        finally:
            asr.cancel()
        if self._asr_error is not None:
            raise self._asr_error
        await self.send(protocol.ack(self.store.received_bytes, fmt))
        transcript = self._transcript(fmt)
        if self.on_done is not None:
            await self.on_done(transcript)
        await self.send(protocol.done(transcript))
        await self.transport.close(protocol.CLOSE_NORMAL)

    @staticmethod
    def _byte_at(fmt: AudioFormat, seconds: float) -> int:
        frames = int(seconds * fmt.sample_rate)
        return frames * fmt.frame_bytes

    def _open_store(self, fmt: AudioFormat) -> EncounterAudio:
        stored = StoredFormat(fmt.sample_rate, fmt.encoding, fmt.channels, self.owner)
        try:
            return EncounterAudio.open(self.config.audio_root, self.encounter_id, stored)
        except AudioStoreError as exc:
            code = "forbidden" if "another clinician" in str(exc) else "format_mismatch"
            raise ProtocolError(code, str(exc)) from None

    async def _receive_audio(self, fmt: AudioFormat, converter: StreamConverter, stream: WhisperStream) -> None:
        """Read frames until stop; each is fsynced, acked, then handed to ASR. Returns at stop."""
        assert self.store is not None
        held: bytes | None = None  # a short frame is legal only as the last one before stop
        while True:
            message = await self._next_message()
            if message is None:
                raise ClientGone
            if isinstance(message, str):
                parsed = protocol.parse_client_text(message)
                if isinstance(parsed, StartMessage):
                    raise ProtocolError("already_started", "start was already sent on this connection")
                if held is not None:
                    await self._accept_frame(held, fmt, converter, stream, last=True)
                else:
                    tail = converter.convert(b"", last=True)
                    if len(tail):
                        stream.feed(tail)
                return
            if held is not None:
                raise ProtocolError("frame_too_short", "a frame under 10 ms may only be the last before stop")
            if len(message) and len(message) < fmt.min_frame_bytes:
                fmt.validate_frame(message, is_last=True)
                held = message
                continue
            fmt.validate_frame(message)
            await self._accept_frame(message, fmt, converter, stream, last=False)

    async def _accept_frame(self, data: bytes, fmt: AudioFormat, converter: StreamConverter, stream: WhisperStream,
                            *, last: bool) -> None:
        assert self.store is not None and self.levels is not None
        protocol.check_session_length(self.store.received_bytes + len(data), fmt, self.config.max_audio_seconds)
        total = await asyncio.to_thread(self.store.append, data)
        await self.send(protocol.ack(total, fmt))
        mono = fmt.to_float_mono(data)
        for code in self.levels.feed(mono):
            await self.send(protocol.warning(code))
        stream.feed(converter.resample(mono, last=last))
        self._audio_ready.set()
        if stream.buffered_seconds > MAX_BACKLOG_S:
            await self.send(protocol.warning("backpressure", "recognition is behind the audio"))
            self._caught_up.clear()
            await self._caught_up.wait()

    async def _asr_loop(self, stream: WhisperStream, offset: float, next_id: int) -> None:
        """Run passes while audio arrives; after `end_input`, the last pass finalises everything.

        One partial pass at a time, and a finishing pass as soon as it is due, beside a running
        partial (which it makes stale) when the scheduler has a second worker: a final then
        never waits for a partial over the same speech.
        """
        partial: asyncio.Task | None = None
        finishing: asyncio.Task | None = None
        try:
            while not stream.finished:
                if finishing is None and stream.finalising():
                    finishing = asyncio.create_task(self.scheduler.run(stream.step, urgent=lambda: True))
                if partial is None and finishing is None and stream.needs_pass():
                    partial = asyncio.create_task(self.scheduler.run(stream.step, urgent=stream.finalising))
                running = [task for task in (partial, finishing) if task is not None]
                if not running:
                    self._caught_up.set()
                    await self._audio_ready.wait()
                    self._audio_ready.clear()
                    continue
                audio = asyncio.create_task(self._audio_ready.wait())
                done, _ = await asyncio.wait([*running, audio], return_when=asyncio.FIRST_COMPLETED)
                audio.cancel()
                if audio in done:
                    self._audio_ready.clear()
                if partial in done:  # published first: when the finishing pass overtook it, it shows nothing
                    next_id = await self._publish(partial.result(), offset, next_id)
                    partial = None
                if finishing in done:
                    next_id = await self._publish(finishing.result(), offset, next_id)
                    finishing = None
        except Exception as exc:  # reported by run() after the reader stops
            self._asr_error = exc
        finally:
            for task in (partial, finishing):
                if task is not None:
                    task.cancel()
            self._caught_up.set()

    async def _publish(self, update: StreamUpdate, offset: float, next_id: int) -> int:
        """Persist finals (fsync) before sending them; then the current partial."""
        assert self.store is not None
        self._processing_s += update.pass_seconds
        for segment in update.finals:
            shifted = shift_segment(segment, offset, next_id)
            next_id += 1
            await asyncio.to_thread(self.store.add_segment, asdict(shifted))
            await self.send(protocol.final(shifted))
        if update.partial_start is not None and update.partial:
            await self.send(protocol.partial(update.partial, round(update.partial_start + offset, 3),
                                             round((update.partial_end or update.partial_start) + offset, 3)))
        elif update.finals:
            await self.send(protocol.partial("", round(update.audio_end + offset, 3), round(update.audio_end + offset, 3)))
        return next_id

    def _transcript(self, fmt: AudioFormat) -> Transcript:
        assert self.store is not None
        segments = [_segment_from_dict(s) for s in self.store.segments()]
        return Transcript(text=join_segment_texts(segments), language="en", engine=self.engine.name,
                          model=self.engine.model, duration_s=round(fmt.seconds_for_bytes(self.store.received_bytes), 3),
                          processing_s=round(self._processing_s, 3), segments=segments)

