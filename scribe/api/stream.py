"""Websocket `/v1/encounters/{encounter_id}/stream` (streaming/PROTOCOL.md): authenticate, then hand over."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from scribe.api.auth import principal_from_header
from scribe.auth.tickets import redeem_ticket
from scribe.auth.tokens import AuthError, Principal
from streaming import protocol
from streaming.audio_store import EncounterAudio
from streaming.protocol import ProtocolError
from streaming.session import SessionConfig, StreamingSession

router = APIRouter()
asr_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")  # Whisper already uses every core


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
        try:
            await self.websocket.send_text(protocol.dumps(message))
        except (WebSocketDisconnect, RuntimeError):  # the client is gone; what it missed it gets on resume
            pass

    async def close(self, code: int) -> None:
        try:
            await self.websocket.close(code)
        except RuntimeError:
            pass


def _origin_allowed(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    settings = websocket.app.state.settings
    allowed = set(settings.allowed_origins)
    if settings.public_url:
        allowed.add(settings.public_url.rstrip("/"))
    return origin.rstrip("/") in allowed


def _authenticate(websocket: WebSocket, encounter_id: str) -> Principal:
    if not _origin_allowed(websocket):
        raise AuthError("origin not allowed")
    ticket = websocket.query_params.get("ticket")
    if ticket:
        subject = redeem_ticket(websocket.app.state.database, ticket, encounter_id)
        return Principal(subject, ("user/*.*",), 0)
    principal = principal_from_header(websocket, websocket.headers.get("authorization"))  # type: ignore[arg-type]
    if not principal.has_scope("user/Encounter.cu"):
        raise AuthError("token lacks the scope to record encounters")
    return principal


@router.websocket("/v1/encounters/{encounter_id}/stream")
async def stream(websocket: WebSocket, encounter_id: str) -> None:
    await websocket.accept()
    transport = WebSocketTransport(websocket)
    state = websocket.app.state
    try:
        principal = await asyncio.to_thread(_authenticate, websocket, encounter_id)
    except AuthError as exc:
        await transport.send(protocol.error(ProtocolError("unauthorized", str(exc))))
        await transport.close(4401)
        return
    try:
        protocol.validate_encounter_id(encounter_id)
        owner = EncounterAudio.owner_of(state.audio_root, encounter_id)
        if owner is not None and owner != principal.subject:
            raise ProtocolError("forbidden", "this encounter belongs to another clinician")
        if encounter_id in state.active_streams:
            raise ProtocolError("already_streaming", "another connection is streaming into this encounter")
        if state.asr.engine is None:
            raise ProtocolError("server_busy", "speech recognition is still loading; retry shortly")
    except ProtocolError as exc:
        await transport.send(protocol.error(exc))
        await transport.close(exc.close_code)
        return
    state.active_streams.add(encounter_id)
    try:
        config = SessionConfig(state.audio_root, state.settings.max_audio_seconds)
        session = StreamingSession(encounter_id, principal.subject, transport, state.asr.engine, asr_executor, config)
        await session.run()
    finally:
        state.active_streams.discard(encounter_id)
