"""Push signed notes to the site's EHR (`SCRIBE_EHR_FHIR_URL`): at-least-once from a persistent outbox.

Each message is a conditional request keyed on the note's identifier — create
(`If-None-Exist`) for a new note, update (`PUT ?identifier=`) for a superseded one — so a
retry after a crash or a lost response never makes a second copy at the EHR: at-least-once
delivery plus conditional create is effectively once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from scribe.store.db import Database
from scribe.store.outbox import OutboxMessage

log = logging.getLogger("scribe.delivery")

FIRST_RETRY_S = 5.0
MAX_RETRY_S = 3600.0
BATCH = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _identifier(resource: dict[str, Any]) -> str:
    ident = resource["identifier"][0]
    return f"{ident['system']}|{ident['value']}"


def enqueue(
    session: Session,
    resource: dict[str, Any],
    *,
    note_id: str,
    version: int,
    replace_existing: bool = False,
    now: datetime | None = None,
) -> OutboxMessage:
    """Queue `resource` for the EHR inside the caller's transaction (commit it with the sign-off).

    `replace_existing` sends a conditional update instead of a create: used to mark the note an
    amendment replaces as superseded at the EHR.
    """
    now = now or _now()
    message = OutboxMessage(
        note_id=note_id,
        version=version,
        method="PUT" if replace_existing else "POST",
        identifier=_identifier(resource),
        payload=json.dumps(resource),
        created_at=now,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(message)
    return message


def retry_delay(attempts: int) -> float:
    """Exponential back-off: 5 s, 10 s, 20 s, ... capped at an hour."""
    return min(FIRST_RETRY_S * 2.0 ** max(attempts - 1, 0), MAX_RETRY_S)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0


def _send(client: httpx.Client, base_url: str, message: OutboxMessage) -> httpx.Response:
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    query = f"identifier={quote(message.identifier, safe='|:')}"
    if message.method == "PUT":
        return client.put(f"{base_url}/DocumentReference?{query}", content=message.payload, headers=headers)
    headers["If-None-Exist"] = query
    return client.post(f"{base_url}/DocumentReference", content=message.payload, headers=headers)


def deliver_due(
    database: Database, base_url: str, client: httpx.Client, *, now: datetime | None = None
) -> DeliveryReport:
    """Send every message that is due, oldest first; each outcome is committed before the next send.

    Messages are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so nodes never send the
    same message at the same time (SQLite has one writer anyway).
    """
    report = DeliveryReport()
    base_url = base_url.rstrip("/")
    moment = now or _now()
    while True:
        with database.session() as session, session.begin():
            message = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= moment)
                .order_by(OutboxMessage.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if message is None:
                return report
            message.attempts += 1
            try:
                response = _send(client, base_url, message)
                ok = response.status_code in (200, 201)
                error = None if ok else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}"
            if ok:
                message.delivered_at = _now()
                message.last_error = None
                report.delivered += 1
            else:
                message.last_error = error
                message.next_attempt_at = moment + timedelta(seconds=retry_delay(message.attempts))
                report.failed += 1
                log.warning(
                    "EHR delivery of outbox message %s failed (%s); attempt %s", message.id, error, message.attempts
                )
        if report.delivered + report.failed >= BATCH:
            return report


def pending_count(database: Database) -> int:
    with database.session() as session:
        return len(session.scalars(select(OutboxMessage.id).where(OutboxMessage.delivered_at.is_(None))).all())


async def delivery_loop(database: Database, base_url: str, *, interval_s: float = 5.0, timeout_s: float = 30.0) -> None:
    """Deliver due messages every `interval_s` until cancelled; runs on every node (claims never overlap)."""
    with httpx.Client(timeout=timeout_s) as client:
        while True:
            try:
                await asyncio.to_thread(deliver_due, database, base_url, client)
            except Exception as exc:  # a database hiccup must not end delivery for good
                log.error("EHR delivery pass failed: %s", type(exc).__name__)
            await asyncio.sleep(interval_s)
