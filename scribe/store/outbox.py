"""The delivery outbox: signed notes waiting to be pushed to the site's EHR.

A row is written in the same transaction as the sign-off, so a crash between sign-off and
delivery still delivers; rows are claimed with row locks that other nodes skip.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scribe.store.models import Base


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))  # POST (conditional create) or PUT (conditional update)
    identifier: Mapped[str] = mapped_column(String(255))  # "system|value" the condition matches on
    payload: Mapped[str] = mapped_column(Text)  # the FHIR resource JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)  # status line, never PHI

    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)
