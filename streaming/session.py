"""One streaming connection from `start` to `done`: store and ack audio, run ASR passes, send results.

Transport-neutral (the API adapts a websocket to `Transport`), so the whole protocol is one
piece of code whatever carries it, and whatever engine recognises (the engine's
`StreamingRecogniser`). ASR passes run on the engine's shared `PassScheduler`, never on
the event loop: one slow session cannot stall the others, finalising passes go first and
otherwise the session that has waited longest gets the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from scribe.asr.base import AsrEngine
from scribe.encounter_audio import AudioStoreError, EncounterAudio, StoredFormat
from scribe.errors import ForbiddenError
from scribe.records import PatientContext
from scribe.streaming import protocol
from scribe.streaming.admission import StreamAdmission
from scribe.streaming.levels import InputLevels
from scribe.streaming.protocol import AudioFormat, ProtocolError, StartMessage, StopMessage, StreamConverter
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate
from scribe.streaming.scheduler import PassScheduler
from scribe.telemetry import telemetry
from scribe.transcript import Segment, Transcript, Word, join_segment_texts
from scribe.transcript import shifted as shift_segment

log = logging.getLogger("scribe.streaming")


class ClientGone(Exception):
    """The client closed the connection without `stop`: acknowledged audio is kept for a resume."""


class Drained(Exception):
    """The node is shutting down: no more audio is read (what was not acked the client sends again on resume)."""


class Transport(Protocol):
    async def receive(self) -> str | bytes | None: ...  # None: the client went away
    async def send(self, message: protocol.Message) -> None: ...
    async def close(self, code: int) -> None: ...


@dataclass
class SessionConfig:
    audio_root: Path
    max_audio_seconds: float
    max_backlog_s: float = 30.0  # audio waiting for ASR before the reader pauses (TCP then slows the client)
    idle_timeout_s: float = protocol.DEFAULT_IDLE_TIMEOUT_S


def _segment_from_dict(data: dict[str, Any]) -> Segment:
    words = [Word(w["word"], w["start"], w["end"], w.get("probability")) for w in data.get("words") or []]
    return Segment(data["id"], data["start"], data["end"], data["text"], data.get("speaker"), words)


class StreamingSession:
    def __init__(
        self,
        encounter_id: str,
        owner: str,
        transport: Transport,
        engine: AsrEngine,
        scheduler: PassScheduler,
        config: SessionConfig,
        context: PatientContext | None = None,
        on_done: Callable[[Transcript], Awaitable[None]] | None = None,
        admission: StreamAdmission | None = None,
        before_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.encounter_id = encounter_id
        self.owner = owner
        self.transport = transport
        self.engine = engine
        self.scheduler = scheduler
        self.config = config
        self.context = context
        self.on_done = on_done  # runs before `done` is sent (the service persists the transcript there)
        self.admission = admission  # told what each finishing pass cost, to size the node's capacity
        # runs when a drained session has stored everything, before `reconnect` (the service frees the lease there)
        self.before_reconnect = before_reconnect
        self.store: EncounterAudio | None = None
        self.levels: InputLevels | None = None  # made at `start`, when the sample rate is known
        self._send_lock = asyncio.Lock()
        self._audio_ready = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._draining = asyncio.Event()  # the node shuts down: read no more audio, send the finals owed, reconnect
        self._abandoned = asyncio.Event()  # the grace is over: reconnect now, without the last finals
        self._asr_error: BaseException | None = None
        self._processing_s = 0.0

    async def send(self, message: protocol.Message) -> None:
        async with self._send_lock:
            await self.transport.send(message)

    async def fail(self, exc: ProtocolError) -> None:
        await self.send(protocol.error(exc))
        await self.transport.close(exc.close_code)

    def drain(self) -> None:
        """The node shuts down: stop reading audio, make and store the finals of the utterances that ended in the
        acked audio, then `reconnect` + 1012."""
        self._draining.set()

    def abandon(self) -> None:
        """The drain's grace is over: `reconnect` + 1012 now; acked audio without a final is recognised on resume."""
        self._abandoned.set()
        self._draining.set()

    async def _next_message(self) -> str | bytes | None:
        """The client's next message; Drained once the node drains (a message not read is not acked either)."""
        if self._draining.is_set():
            raise Drained
        receive = asyncio.ensure_future(self.transport.receive())
        draining = asyncio.ensure_future(self._draining.wait())
        try:
            done, _ = await asyncio.wait(
                [receive, draining], timeout=self.config.idle_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            draining.cancel()
            if not receive.done():
                receive.cancel()  # nothing is taken from the connection: the message stays unread
        if receive in done:
            return receive.result()
        if draining in done:
            raise Drained
        raise ProtocolError("idle_timeout", f"no message for {self.config.idle_timeout_s:g} s")

    async def _move(self) -> None:
        """Send the client to another node: everything is stored, the store closed and the lease freed first, so
        the resume (replayed finals, audio after the last one recognised again) can start there at once."""
        if self.store is not None:
            self.store.close()
        if self.before_reconnect is not None:
            try:
                await self.before_reconnect()
            except Exception as exc:  # the client must still hear where to go; a lease left behind runs out
                log.error("could not prepare the stream's move: %s", type(exc).__name__)
        await self.send(protocol.reconnect())
        await self.transport.close(protocol.CLOSE_RESTART)

    async def run(self) -> None:
        """The whole connection; every protocol error ends only this connection, with its code."""
        try:
            await self._run()
        except ClientGone:
            log.info("stream closed by the client before stop; audio kept for resume")
        except Drained:
            log.info("stream moved off this node as it shuts down; audio and finals kept for resume")
            await self._move()
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
        stream = StreamingRecogniser.for_engine(self.engine, context=self.context, congested=self.scheduler.congested)
        converter = StreamConverter(fmt)
        next_id = stored[-1].id + 1 if stored else 0
        resumed = self.store.read(min(self.store.received_bytes, self._byte_at(fmt, offset)))
        if resumed:  # stored audio after the last final: recognise it again, it has no final yet
            stream.feed(converter.convert(resumed))
            self._audio_ready.set()
        self.levels = InputLevels(fmt.sample_rate)
        asr = asyncio.create_task(self._asr_loop(stream, offset, next_id))
        drained = False
        try:
            try:
                await self._receive_audio(fmt, converter, stream)
                stream.end_input()
            except Drained:  # the finals owed for utterances that ended; the one under way is the resume's
                drained = True
            self._audio_ready.set()
            await self._finish(asr)
        finally:
            asr.cancel()
        if self._asr_error is not None:
            raise self._asr_error
        await self.send(protocol.ack(self.store.received_bytes, fmt))
        if drained:
            raise Drained
        transcript = self._transcript(fmt)
        if self.on_done is not None:
            await self.on_done(transcript)
        await self.send(protocol.done(transcript))
        await self.transport.close(protocol.CLOSE_NORMAL)

    async def _finish(self, asr: asyncio.Task[None]) -> None:
        """Wait for the last pass (or, draining, the finals owed); when the drain abandons the session first, stop it
        (its finals so far are stored) and move on: the acked audio after the last stored final is recognised again
        on resume."""
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        try:
            await asyncio.wait([asr, abandoned], return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned.cancel()
        if not asr.done():
            asr.cancel()
            await asyncio.wait([asr])
            raise Drained

    @staticmethod
    def _byte_at(fmt: AudioFormat, seconds: float) -> int:
        frames = int(seconds * fmt.sample_rate)
        return frames * fmt.frame_bytes

    def _open_store(self, fmt: AudioFormat) -> EncounterAudio:
        stored = StoredFormat(fmt.sample_rate, fmt.encoding, fmt.channels, self.owner)
        try:
            return EncounterAudio.open(self.config.audio_root, self.encounter_id, stored)
        except ForbiddenError as exc:
            raise ProtocolError("forbidden", str(exc)) from None
        except AudioStoreError as exc:
            raise ProtocolError("format_mismatch", str(exc)) from None

    async def _receive_audio(self, fmt: AudioFormat, converter: StreamConverter, stream: StreamingRecogniser) -> None:
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

    async def _accept_frame(
        self, data: bytes, fmt: AudioFormat, converter: StreamConverter, stream: StreamingRecogniser, *, last: bool
    ) -> None:
        assert self.store is not None and self.levels is not None
        protocol.check_session_length(self.store.received_bytes + len(data), fmt, self.config.max_audio_seconds)
        total = await asyncio.to_thread(self.store.append, data)
        await self.send(protocol.ack(total, fmt))
        mono = fmt.to_float_mono(data)
        for code in self.levels.feed(mono):
            await self.send(protocol.warning(code))
        stream.feed(converter.resample(mono, last=last))
        self._audio_ready.set()
        if stream.buffered_seconds > self.config.max_backlog_s:
            await self.send(protocol.warning("backpressure", "recognition is behind the audio"))
            self._caught_up.clear()
            caught_up, draining = (asyncio.ensure_future(event.wait()) for event in (self._caught_up, self._draining))
            try:  # a drain ends the wait: the next read stops the session
                await asyncio.wait([caught_up, draining], return_when=asyncio.FIRST_COMPLETED)
            finally:
                caught_up.cancel()
                draining.cancel()

    async def _asr_loop(self, stream: StreamingRecogniser, offset: float, next_id: int) -> None:
        """Run passes while audio arrives; after `end_input`, the last pass finalises everything.

        One partial pass at a time, and a finishing pass as soon as it is due, beside a running
        partial (which it makes stale) when the scheduler has a second worker: a final then
        never waits for a partial over the same speech. When the node drains, the loop ends once
        every utterance that ended has its final: the one still being spoken is recognised whole on
        the resume (cut mid-word here, its two halves would come out garbled on either side).
        """
        partial: asyncio.Task[StreamUpdate] | None = None
        finishing: asyncio.Task[StreamUpdate] | None = None
        try:
            while not stream.finished:
                if finishing is None and stream.finalising():
                    finishing = asyncio.create_task(self.scheduler.run(stream.step, urgent=lambda: True))
                if finishing is None and self._draining.is_set():
                    break
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
        if update.pass_seconds:
            kind = "final" if update.finals or update.final_pass_audio_s else "partial"
            telemetry.asr_pass(self.engine.name, kind, update.pass_seconds)
        if self.admission is not None:  # what a stream costs at capacity: its finals, and its partials under load
            if update.final_pass_audio_s:
                self.admission.observe_pass(update.pass_seconds, update.final_pass_audio_s, final=True)
            elif update.loaded_partial_audio_s:
                self.admission.observe_pass(update.pass_seconds, update.loaded_partial_audio_s, final=False)
        for segment in update.finals:
            shifted = shift_segment(segment, offset, next_id)
            next_id += 1
            await asyncio.to_thread(self.store.add_segment, asdict(shifted))
            await self.send(protocol.final(shifted))
        if update.partial_start is not None and update.partial:
            await self.send(
                protocol.partial(
                    update.partial,
                    round(update.partial_start + offset, 3),
                    round((update.partial_end or update.partial_start) + offset, 3),
                )
            )
        elif update.finals:
            await self.send(
                protocol.partial("", round(update.audio_end + offset, 3), round(update.audio_end + offset, 3))
            )
        return next_id

    def _transcript(self, fmt: AudioFormat) -> Transcript:
        assert self.store is not None
        segments = [_segment_from_dict(s) for s in self.store.segments()]
        # a resumed stream's times are rounded on its own clock, then shifted: the last word may end 1 ms past
        duration = max([round(fmt.seconds_for_bytes(self.store.received_bytes), 3)] + [s.end for s in segments[-1:]])
        return Transcript(
            text=join_segment_texts(segments),
            language="en",
            engine=self.engine.name,
            model=self.engine.model,
            duration_s=duration,
            processing_s=round(self._processing_s, 3),
            segments=segments,
        )
