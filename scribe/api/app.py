"""The FastAPI application: one process serves websocket ingest, ASR, REST and (later) FHIR."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

import scribe
from scribe.api import (
    docs,
    encounters,
    engines,
    fhir_rest,
    health,
    metrics,
    notes,
    session,
    smart,
    stream,
    tickets,
    web,
)
from scribe.api.asr_state import AsrState
from scribe.api.audit_trail import AuditMiddleware
from scribe.api.bodies import sweep_spool
from scribe.api.errors import install_error_handlers
from scribe.api.headers import SecurityHeadersMiddleware
from scribe.api.request_ids import RequestIdMiddleware
from scribe.auth.oidc import OidcVerifier
from scribe.auth.signing_key import signing_key
from scribe.config import Settings
from scribe.drain import NodeDrain
from scribe.encounter_audio import upload_spool_dir
from scribe.encounters import release_node_streams
from scribe.fhir.delivery import delivery_loop
from scribe.retention import retention_loop
from scribe.store import Database, open_database
from scribe.store.backup import hold_serving_lock
from scribe.uploads import release_node_jobs, upload_loop

log = logging.getLogger("scribe.drain")


def create_app(
    settings: Settings,
    *,
    load_asr: bool = True,
    database_schema: str | None = None,
    on_asr_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app; the database is opened and migrated, and the signing key fetched, before serving.

    `database_schema` puts every table in that PostgreSQL schema (tests use one schema per run).
    `on_asr_failure` hears, once, why an ASR engine the operator configured cannot serve.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        database = open_database(settings, schema=database_schema)
        serving = hold_serving_lock(settings)  # `scribe db restore` refuses a database that is being served
        app.state.settings = settings
        app.state.database = database
        app.state.signing_key = signing_key(settings, database)
        with database.session() as session, session.begin():
            release_node_streams(session, settings.node_id)  # leases this node held before a crash or restart
            release_node_jobs(session, settings.node_id)  # uploads it was transcribing: taken up again below
        # uploads this node was receiving when it stopped
        sweep_spool(upload_spool_dir(settings.audio_dir), settings.node_id)
        app.state.oidc_verifier = OidcVerifier.from_settings(settings)  # a half configuration fails here, at start
        app.state.asr = AsrState(disabled=not load_asr, stream_capacity=settings.stream_capacity)
        app.state.audio_root = settings.audio_dir
        app.state.active_streams = set()
        if load_asr:
            threading.Thread(
                target=app.state.asr.load, args=(settings, on_asr_failure), name="asr-load", daemon=True
            ).start()
        delivery = (
            asyncio.create_task(delivery_loop(database, settings.ehr_fhir_url, interval_s=settings.delivery_interval_s))
            if settings.ehr_fhir_url
            else None
        )
        retention = (
            asyncio.create_task(retention_loop(database, settings))
            if settings.audio_retention_days is not None
            else None
        )
        uploads = asyncio.create_task(
            upload_loop(
                database,
                settings,
                encounters.upload_executor,
                interval_s=settings.upload_poll_s,
                stop=app.state.drain.jobs_stop,
            )
        )
        yield
        for task in (delivery, retention, uploads):
            if task is not None:
                task.cancel()
        if app.state.drain.draining:
            await _leave_uploads(app.state.drain, database, settings)
        database.engine.dispose()
        if serving is not None:
            serving.close()

    app = FastAPI(title="scribe", version=scribe.__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.drain = NodeDrain(settings.shutdown_grace_s)  # `scribe serve` drives it on SIGTERM
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
    app.add_middleware(RequestIdMiddleware)  # outermost: every log line of the request carries its id
    return app


async def _leave_uploads(drain: NodeDrain, database: Database, settings: Settings) -> None:
    """A draining node finishes the upload it is transcribing if the grace allows, else hands its job back to the
    queue (the attempt refunded) so another node takes it up at once; its own late result is then discarded."""
    idle = asyncio.wrap_future(encounters.upload_executor.submit(lambda: None))  # one worker: runs after the job
    try:
        await asyncio.wait_for(idle, timeout=max(0.0, drain.remaining_s() - 1.0))
        return
    except TimeoutError:
        pass
    with database.session() as session, session.begin():
        released = release_node_jobs(session, settings.node_id, refund_attempt=True)
    log.warning("drain: %d upload jobs handed back to the queue for another node", released)
