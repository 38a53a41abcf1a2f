"""The FastAPI application: one process serves websocket ingest, ASR, REST and (later) FHIR."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

import scribe
from scribe.api import encounters, engines, fhir_rest, health, metrics, notes, stream, tickets
from scribe.api import session, smart, web
from scribe.api import docs
from scribe.api.audit_trail import AuditMiddleware
from scribe.api.bodies import sweep_spool
from scribe.api.errors import install_error_handlers
from scribe.api.headers import SecurityHeadersMiddleware
from scribe.asr import AsrEngine, choose_engine, load_engine
from scribe.auth.oidc import OidcVerifier
from scribe.auth.signing_key import signing_key
from scribe.config import Settings
from scribe.delivery import delivery_loop
from scribe.encounters import release_node_streams, upload_spool_dir
from scribe.retention import retention_loop
from scribe.store import open_database
from scribe.uploads import release_node_jobs, upload_loop
from streaming.scheduler import PassScheduler

log = logging.getLogger("scribe.api")


@dataclass
class AsrState:
    """The streaming ASR engine, loaded in the background so the server answers /healthz at once."""

    engine: AsrEngine | None = None
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)
    _scheduler: PassScheduler | None = None

    @property
    def scheduler(self) -> PassScheduler:
        """Every session's passes, as many at once as the engine serves (made on first use, once it is loaded)."""
        if self._scheduler is None:
            self._scheduler = PassScheduler("asr", workers=self.engine.workers if self.engine is not None else 1)
        return self._scheduler

    def load(self, settings: Settings) -> None:
        try:
            self.engine = load_engine(choose_engine(settings.asr_engine, "encounter", settings), settings)
            log.info("ASR engine ready: %s (%s)", self.engine.name, self.engine.model)
        except Exception as exc:  # reported by /healthz as not ready; the server keeps serving
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("ASR engine failed to load: %s", self.error)
        finally:
            self.loaded.set()


def create_app(settings: Settings, *, load_asr: bool = True, database_schema: str | None = None) -> FastAPI:
    """Build the app; the database is opened and migrated, and the signing key fetched, before serving.

    `database_schema` puts every table in that PostgreSQL schema (tests use one schema per run).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        database = open_database(settings, schema=database_schema)
        app.state.settings = settings
        app.state.database = database
        app.state.signing_key = signing_key(settings, database)
        with database.session() as session, session.begin():
            release_node_streams(session, settings.node_id)  # leases this node held before a crash or restart
            release_node_jobs(session, settings.node_id)  # uploads it was transcribing: taken up again below
        sweep_spool(upload_spool_dir(settings), settings.node_id)  # uploads this node was receiving when it stopped
        app.state.oidc_verifier = OidcVerifier.from_settings(settings)  # a half configuration fails here, at start
        app.state.asr = AsrState()
        app.state.audio_root = settings.audio_dir
        app.state.active_streams = set()
        if load_asr:
            threading.Thread(target=app.state.asr.load, args=(settings,), name="asr-load", daemon=True).start()
        delivery = (asyncio.create_task(delivery_loop(database, settings.ehr_fhir_url,
                                                     interval_s=settings.delivery_interval_s))
                    if settings.ehr_fhir_url else None)
        retention = (asyncio.create_task(retention_loop(database, settings))
                     if settings.audio_retention_days is not None else None)
        uploads = asyncio.create_task(upload_loop(database, settings, encounters.upload_executor,
                                                  interval_s=settings.upload_poll_s))
        yield
        for task in (delivery, retention, uploads):
            if task is not None:
                task.cancel()
        database.engine.dispose()

    app = FastAPI(title="scribe", version=scribe.__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(tickets.router)
    app.include_router(stream.router)
    app.include_router(session.router)
    app.include_router(smart.router)
    app.include_router(encounters.router)
    app.include_router(notes.router)
    app.include_router(fhir_rest.router)
    app.include_router(engines.router)
    app.include_router(web.router)
    web.mount_static(app)
    app.add_middleware(AuditMiddleware)
    app.state.request_counter = metrics.RequestCounter()
    app.add_middleware(metrics.MetricsMiddleware, counter=app.state.request_counter)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
