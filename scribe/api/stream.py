"""Websocket `/v1/encounters/{encounter_id}/stream` (streaming/PROTOCOL.md): authenticate, then hand over."""

from __future__ import annotations

import asyncio
import logging
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from scribe import logs
from scribe.api.auth import browser_origin_allowed, principal_from_header, refuse_inactive
from scribe.api.state import ServiceState, service
from scribe.audit import Actor, record
from scribe.auth.tickets import redeem_ticket
from scribe.auth.tokens import CLINICIAN_SCOPES, AuthError, Principal
from scribe.encounter_audio import EncounterAudio
from scribe.encounters import acquire_stream, encounter_for_stream, records_context, release_stream, save_transcript
from scribe.errors import ForbiddenError
from scribe.records import PatientContext
from scribe.store import Database
from scribe.store.models import Encounter
from scribe.streaming import protocol
from scribe.streaming.protocol import ProtocolError
from scribe.streaming.session import SessionConfig, StreamingSession
from scribe.telemetry import telemetry
from scribe.transcript import Transcript

log = logging.getLogger("scribe.streaming")
CLAIM_WAIT_S = 3.0
router = APIRouter()


class WebSocketTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            return message["bytes"]
        return message.get("text") or ""

    async def send(self, message: dict) -> None:
        if message["type"] == "error":
            telemetry.stream_error(message["code"])
        try:
            await self.websocket.send_text(protocol.dumps(message))
        except (WebSocketDisconnect, RuntimeError):  # the client is gone; what it missed it gets on resume
            pass

    async def close(self, code: int) -> None:
        try:
            await self.websocket.close(code)
        except RuntimeError:
            pass


def _authenticate(websocket: WebSocket, encounter_id: str) -> Principal:
    if not browser_origin_allowed(websocket):
        raise AuthError("origin not allowed")
    ticket = websocket.query_params.get("ticket")
    if ticket:
        subject = redeem_ticket(service(websocket).database, ticket, encounter_id)
        principal = Principal(subject, CLINICIAN_SCOPES, 0)
        refuse_inactive(websocket, principal, unknown_ok=True)  # issued to a signed-in user, maybe one of the IdP's
        return principal
    principal = principal_from_header(websocket, websocket.headers.get("authorization"))
    if not principal.has_scope("user/Encounter.cu"):
        raise AuthError("token lacks the scope to record encounters")
    return principal


@router.websocket("/v1/encounters/{encounter_id}/stream")
async def stream(websocket: WebSocket, encounter_id: str) -> None:
    await websocket.accept()
    transport = WebSocketTransport(websocket)
    state = service(websocket)
    try:
        principal = await asyncio.to_thread(_authenticate, websocket, encounter_id)
    except AuthError as exc:
        await asyncio.to_thread(_audit, websocket, exc.subject, exc.subject_kind, "auth-failure", 401, None)
        await transport.send(protocol.error(ProtocolError("unauthorized", str(exc))))
        await transport.close(4401)
        return
    holder = f"{state.settings.node_id}/{uuid.uuid4().hex}"
    try:
        logs.encounter_id.set(protocol.validate_encounter_id(encounter_id))  # this connection's log lines
        if state.drain.draining:
            raise ProtocolError("server_busy", "this node is shutting down; reconnect to resume on another node")
        if not state.asr.ready:
            raise ProtocolError(
                "server_busy",
                "speech recognition is still loading; retry shortly"
                if state.asr.error is None and not state.asr.disabled
                else "speech recognition is unavailable on this node; retry later",
            )
        context, patient_id, mode = await _claim_soon(
            state.database, principal, encounter_id, holder, state.settings.stream_lease_s
        )
        if not await _admit(state, encounter_id):
            await asyncio.shield(asyncio.to_thread(_release, state.database, encounter_id, holder))
            raise ProtocolError(
                "server_busy", "this node streams as many encounters as it can transcribe in real time; retry shortly"
            )
    except ProtocolError as exc:
        if exc.code == "forbidden":
            await asyncio.to_thread(_audit, websocket, principal.subject, principal.kind, "stream", 403, None)
        await transport.send(protocol.error(exc))
        await transport.close(exc.close_code)
        return
    admission = state.asr.admission
    assert admission is not None  # _admit let the stream in through it
    try:
        await asyncio.to_thread(_audit, websocket, principal.subject, principal.kind, "stream", 200, patient_id)
        await _serve(websocket, transport, principal, encounter_id, holder, context, mode)
    finally:
        admission.release()


async def _admit(state: ServiceState, encounter_id: str) -> bool:
    """Whether the node can take this stream now; one resuming audio already stored always gets in."""
    resuming = await asyncio.to_thread(EncounterAudio.stored_format, state.audio_root, encounter_id) is not None
    admission = state.asr.admission
    assert admission is not None  # made once the engines loaded: the caller refused the stream before that
    return admission.admit(resuming=resuming)


async def _serve(
    websocket: WebSocket,
    transport: WebSocketTransport,
    principal: Principal,
    encounter_id: str,
    holder: str,
    context: PatientContext | None,
    mode: str,
) -> None:
    """Run the admitted session, holding the encounter's lease until it ends."""
    state = service(websocket)
    state.active_streams.add(encounter_id)
    renewing = asyncio.create_task(_keep_lease(state.database, encounter_id, holder, state.settings.stream_lease_s))
    try:
        config = SessionConfig(
            state.audio_root, state.settings.max_audio_seconds, state.settings.max_stream_backlog_seconds
        )

        async def persist(transcript: Transcript) -> None:
            await asyncio.to_thread(_save_stream_transcript, state.database, encounter_id, transcript)

        async def free_lease() -> None:  # the session moves off a draining node: its resume may start elsewhere now
            renewing.cancel()
            await asyncio.shield(asyncio.to_thread(_release, state.database, encounter_id, holder))

        engine = state.asr.engine_for(mode)  # a dictation may stream with MedASR, a conversation with Whisper
        session = StreamingSession(
            encounter_id,
            principal.subject,
            transport,
            engine,
            state.asr.scheduler_for(engine),
            config,
            context=context,
            on_done=persist,
            admission=state.asr.admission,
            before_reconnect=free_lease,
        )
        with state.drain.stream(session):
            await session.run()
    finally:
        renewing.cancel()
        state.active_streams.discard(encounter_id)
        # shielded: a handler cancelled as the client goes away must still free the encounter for its resume
        await asyncio.shield(asyncio.to_thread(_release, state.database, encounter_id, holder))


async def _claim_soon(
    database: Database, principal: Principal, encounter_id: str, holder: str, lease_s: float
) -> tuple[PatientContext | None, str | None, str]:
    """`_claim`, waiting up to CLAIM_WAIT_S for a connection that just dropped to let go (a quick reconnect)."""
    deadline = asyncio.get_running_loop().time() + CLAIM_WAIT_S
    while True:
        try:
            return await asyncio.to_thread(_claim, database, principal, encounter_id, holder, lease_s)
        except ProtocolError as exc:
            if exc.code != "already_streaming" or asyncio.get_running_loop().time() >= deadline:
                raise
        await asyncio.sleep(0.1)


def _claim(
    database: Database, principal: Principal, encounter_id: str, holder: str, lease_s: float
) -> tuple[PatientContext | None, str | None, str]:
    """The right to stream into the encounter (created for this clinician when new), across every node; its
    records, patient and mode (which picks the engine)."""
    with database.session() as session, session.begin():
        try:
            encounter = encounter_for_stream(session, principal.subject, encounter_id)
        except ForbiddenError as exc:
            raise ProtocolError("forbidden", str(exc)) from None
        if not acquire_stream(session, encounter_id, holder, ttl_s=lease_s):
            raise ProtocolError("already_streaming", "another connection is streaming into this encounter")
        return records_context(session, encounter_id), encounter.patient_id, encounter.mode


async def _keep_lease(database: Database, encounter_id: str, holder: str, lease_s: float) -> None:
    """Renew the stream lease while the connection lives; a dead node's lease runs out by itself."""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            await asyncio.to_thread(_renew, database, encounter_id, holder, lease_s)
        except Exception as exc:  # a database hiccup must not end the stream; the next renewal retries
            log.warning("stream lease renewal failed: %s", type(exc).__name__)


def _renew(database: Database, encounter_id: str, holder: str, lease_s: float) -> None:
    with database.session() as session, session.begin():
        acquire_stream(session, encounter_id, holder, ttl_s=lease_s)


def _release(database: Database, encounter_id: str, holder: str) -> None:
    with database.session() as session, session.begin():
        release_stream(session, encounter_id, holder)


def _save_stream_transcript(database: Database, encounter_id: str, transcript: Transcript) -> None:
    with database.session() as session, session.begin():
        encounter = session.get(Encounter, encounter_id)
        if encounter is not None:
            save_transcript(session, encounter, transcript, source="stream")


def _audit(
    websocket: WebSocket, subject: str | None, kind: str, action: str, status: int, patient_id: str | None
) -> None:
    actor = Actor(subject, kind if subject else "anonymous", websocket.client.host if websocket.client else None)
    try:
        record(
            service(websocket).database,
            actor,
            action,
            resource_type="Encounter",
            resource_id=websocket.path_params.get("encounter_id"),
            patient_id=patient_id,
            status=status,
            method="GET",
            path="/v1/encounters/{encounter_id}/stream",
        )
    except Exception as exc:  # the stream's answer must still go out; the failure is logged
        log.error("cannot write the %s audit record: %s", action, type(exc).__name__)
