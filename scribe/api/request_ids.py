"""Every HTTP request and websocket connection gets an id: the caller's `X-Request-ID` when it is a sane token
(a proxy's or client's id, so their logs and scribe's line up), else a new one. It is returned in the
`X-Request-ID` response header and set in `scribe.logs.request_id`, which the JSON log lines carry.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scribe import logs

HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # what proxies and clients send: uuids, hex ids


def request_id_for(incoming: str | None) -> str:
    """`incoming` when it is a sane token, else a fresh id."""
    if incoming is not None and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Outermost middleware: the id is set before anything logs. It is not reset afterwards: each request runs in a
    task of its own, and the error handler that logs an unhandled exception runs after this middleware returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(Headers(scope=scope).get(HEADER))
        logs.request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
