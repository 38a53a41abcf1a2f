"""Single-use websocket tickets: browsers cannot set an Authorization header on a websocket.

Only a hash of the ticket is stored; redeeming is one conditional UPDATE, so a ticket works
once even when two nodes race for it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from scribe.auth.tokens import AuthError
from scribe.store import Database
from scribe.store.models import StreamTicket

TICKET_TTL_S = 60


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(database: Database, subject: str, encounter_id: str, ttl_s: int = TICKET_TTL_S) -> str:
    ticket = secrets.token_urlsafe(32)
    with database.session() as session:
        session.add(
            StreamTicket(
                ticket_hash=_hash(ticket),
                subject=subject,
                encounter_id=encounter_id,
                expires_at=datetime.now(UTC) + timedelta(seconds=min(ttl_s, TICKET_TTL_S)),
            )
        )
        session.commit()
    return ticket


def redeem_ticket(database: Database, ticket: str, encounter_id: str) -> str:
    """The ticket's subject, if it is unused, unexpired and for this encounter; it is spent either way."""
    now = datetime.now(UTC)
    with database.session() as session:
        spent = session.execute(
            update(StreamTicket)
            .where(
                StreamTicket.ticket_hash == _hash(ticket), StreamTicket.used_at.is_(None), StreamTicket.expires_at > now
            )
            .values(used_at=now)
            .returning(StreamTicket.subject, StreamTicket.encounter_id)
        ).first()
        session.commit()
    if spent is None:
        raise AuthError("stream ticket is unknown, expired or already used")
    subject, issued_for = spent  # unpacked, the row keeps its columns' types (attribute access is untyped)
    if issued_for != encounter_id:
        raise AuthError("stream ticket was issued for another encounter")
    return subject
