"""The service's shared objects, typed: what `create_app` puts on `app.state` before serving, as routes read it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from starlette.requests import HTTPConnection

if TYPE_CHECKING:  # the web layer's own modules import this one
    from scribe.api.asr_state import AsrState
    from scribe.api.metrics import RequestCounter
    from scribe.auth.oidc import OidcVerifier
    from scribe.config import Settings
    from scribe.drain import NodeDrain
    from scribe.store import Database


class ServiceState(Protocol):
    settings: Settings
    database: Database
    signing_key: bytes
    oidc_verifier: OidcVerifier | None
    asr: AsrState
    audio_root: Path
    active_streams: set[str]  # encounter ids streaming on this node
    drain: NodeDrain
    request_counter: RequestCounter


def service(connection: HTTPConnection) -> ServiceState:
    """The app's state behind a request or a websocket (starlette keeps it untyped)."""
    return cast("ServiceState", connection.app.state)  # create_app sets every attribute before the first request
