"""Jobs for uploads stored before upload jobs existed: one left without a transcript is transcribed at the next start.

Before 0003 an upload was transcribed in the request that stored it; a process killed meanwhile left the
audio stored and no transcript, and nothing would ever come back to it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    uploads = sa.table("audio_uploads", sa.column("id"), sa.column("encounter_id"))
    transcripts = sa.table("transcripts", sa.column("upload_id"))
    jobs = sa.table(
        "upload_jobs",
        sa.column("upload_id"),
        sa.column("encounter_id"),
        sa.column("state"),
        sa.column("attempts"),
        sa.column("next_attempt_at"),
        sa.column("created_at"),
        sa.column("updated_at"),
    )
    moment = datetime.now(UTC)
    untranscribed = sa.select(
        uploads.c.id,
        uploads.c.encounter_id,
        sa.literal("transcribing"),
        sa.literal(0),
        sa.literal(moment, sa.DateTime(timezone=True)),
        sa.literal(moment, sa.DateTime(timezone=True)),
        sa.literal(moment, sa.DateTime(timezone=True)),
    ).where(
        ~sa.exists().where(transcripts.c.upload_id == uploads.c.id),
        ~sa.exists().where(jobs.c.upload_id == uploads.c.id),
    )
    op.execute(jobs.insert().from_select(list(jobs.c.keys()), untranscribed))


def downgrade() -> None:
    """The jobs stay: they are the record of what was transcribed since."""
