"""The FastAPI application: one process serves websocket ingest, ASR, REST and (later) FHIR."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

import scribe
from scribe.api import health, stream, tickets
from scribe.api.errors import install_error_handlers
from scribe.asr import AsrEngine, choose_engine, load_engine
from scribe.auth.signing_key import signing_key
from scribe.config import Settings
from scribe.store import open_database

log = logging.getLogger("scribe.api")


@dataclass
class AsrState:
    """The streaming ASR engine, loaded in the background so the server answers /healthz at once."""

    engine: AsrEngine | None = None
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)

    def load(self, settings: Settings) -> None:
        try:
            self.engine = load_engine(choose_engine(settings.asr_engine, "encounter", settings), settings)
            log.info("ASR engine ready: %s (%s)", self.engine.name, self.engine.model)
        except Exception as exc:  # reported by /healthz as not ready; the server keeps serving
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("ASR engine failed to load: %s", self.error)
        finally:
            self.loaded.set()


def create_app(settings: Settings, *, load_asr: bool = True) -> FastAPI:
    """Build the app; the database is opened and migrated, and the signing key fetched, before serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        database = open_database(settings)
        app.state.settings = settings
        app.state.database = database
        app.state.signing_key = signing_key(settings, database)
        app.state.asr = AsrState()
        app.state.audio_root = settings.audio_dir
        app.state.active_streams = set()
        if load_asr:
            threading.Thread(target=app.state.asr.load, args=(settings,), name="asr-load", daemon=True).start()
        yield
        database.engine.dispose()

    app = FastAPI(title="scribe", version=scribe.__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(tickets.router)
    app.include_router(stream.router)
    return app
