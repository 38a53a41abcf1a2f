"""Audio retention (`SCRIBE_AUDIO_RETENTION_DAYS`): recordings are deleted N days after their note is signed.

Transcripts, notes and the audit trail stay; only the audio files go (stream and uploads), each
deletion audited. Every node may run the purge: deleting what is already gone is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from scribe.audit import Actor, record
from scribe.config import Settings
from scribe.encounter_audio import delete_encounter_audio
from scribe.encounters import now
from scribe.store import Database
from scribe.store.models import Encounter

log = logging.getLogger("scribe.retention")
SYSTEM = Actor("scribe-retention", "system")


def purge_expired_audio(database: Database, settings: Settings, *, moment: datetime | None = None) -> int:
    """Delete the audio of encounters signed more than the retention period ago; returns how many."""
    if settings.audio_retention_days is None:
        return 0
    cutoff = (moment or now()) - timedelta(days=settings.audio_retention_days)
    with database.session() as session:
        due = list(
            session.scalars(
                select(Encounter.id).where(
                    Encounter.signed_at.is_not(None), Encounter.signed_at <= cutoff, Encounter.audio_purged_at.is_(None)
                )
            )
        )
    purged = 0
    for encounter_id in due:
        delete_encounter_audio(settings.audio_dir, encounter_id)
        with database.session() as session, session.begin():
            encounter = session.get(Encounter, encounter_id)
            if encounter is None or encounter.audio_purged_at is not None:
                continue
            encounter.audio_purged_at = now()
            patient = encounter.patient_id
        record(
            database,
            SYSTEM,
            "delete",
            resource_type="Encounter",
            resource_id=encounter_id,
            patient_id=patient,
            detail="audio deleted under the retention policy",
        )
        purged += 1
    return purged


async def retention_loop(database: Database, settings: Settings, *, interval_s: float = 3600.0) -> None:
    """Purge once an hour until cancelled; a failed pass is logged and retried on the next one."""
    while True:
        try:
            count = await asyncio.to_thread(purge_expired_audio, database, settings)
            if count:
                log.info("deleted the audio of %d encounter(s) under the retention policy", count)
        except Exception as exc:  # the next pass retries
            log.error("audio retention pass failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
