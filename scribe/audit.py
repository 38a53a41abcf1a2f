"""The audit trail: who read, searched, uploaded, generated, signed or amended what, for which patient.

Every access to patient data writes one `AuditRecord` (in its own transaction, so a failed
request is audited too); admins read them as FHIR `AuditEvent`s shaped after IHE BALP.
Records carry ids and route templates, never names or transcript words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from scribe.store import Database
from scribe.store.models import AuditRecord

# action -> (FHIR AuditEvent.action code, restful interaction subtype)
ACTIONS: dict[str, tuple[str, str]] = {
    "read": ("R", "read"),
    "search": ("E", "search-type"),
    "create": ("C", "create"),
    "update": ("U", "update"),
    "upload": ("C", "create"),
    "generate": ("C", "create"),
    "sign": ("U", "update"),
    "amend": ("C", "create"),
    "addendum": ("C", "create"),
    "delete": ("D", "delete"),
    "login": ("E", "create"),
    "logout": ("E", "delete"),
    "token": ("E", "create"),
    "auth-failure": ("E", "read"),
    "stream": ("C", "create"),
}
OUTCOME_SUCCESS, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"


@dataclass(frozen=True)
class Actor:
    """Who acted: a user (clinician/admin), a system client, or nobody we could identify."""

    name: str | None
    kind: str  # user | system | anonymous
    source_ip: str | None = None


ANONYMOUS = Actor(None, "anonymous")


def outcome_for(status: int) -> str:
    """FHIR AuditEvent outcome for an HTTP status: success, minor failure (4xx), serious failure (5xx)."""
    if status < 400:
        return OUTCOME_SUCCESS
    return OUTCOME_MINOR if status < 500 else OUTCOME_SERIOUS


def record(
    database: Database,
    actor: Actor,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    patient_id: str | None = None,
    status: int = 200,
    method: str | None = None,
    path: str | None = None,
    detail: str | None = None,
) -> None:
    """Write one audit record now, in a transaction of its own."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with database.session() as session, session.begin():
        session.add(
            AuditRecord(
                recorded_at=datetime.now(UTC),
                actor=actor.name,
                actor_kind=actor.kind,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                patient_id=patient_id,
                outcome=outcome_for(status),
                status_code=status,
                source_ip=actor.source_ip,
                method=method,
                path=path,
                detail=detail[:255] if detail else None,
            )
        )


def audit_event(row: AuditRecord, base_url: str = "") -> dict[str, Any]:
    """An audit record as a FHIR R4 AuditEvent (validated with fhir.resources R4B)."""
    code, subtype = ACTIONS[row.action]
    agent: dict[str, Any] = {
        "requestor": True,
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP" if row.actor_kind == "system" else "AUT",
                }
            ]
        },
    }
    if row.actor:
        kind = "Device" if row.actor_kind == "system" else "Practitioner"
        agent["who"] = {
            "identifier": {"system": f"urn:scribe:{row.actor_kind}", "value": row.actor},
            "display": f"{kind} {row.actor}",
        }
    else:
        agent["who"] = {"display": "unidentified caller"}
    if row.source_ip:
        agent["network"] = {"address": row.source_ip, "type": "2"}
    entities: list[dict[str, Any]] = []
    if row.resource_type and row.resource_id:
        entities.append(
            {
                "what": {"reference": f"{row.resource_type}/{row.resource_id}"},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            }
        )
    elif row.resource_type:
        entities.append(
            {
                "what": {"display": row.resource_type},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            }
        )
    if row.patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{row.patient_id}"},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.id),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype}],
        "action": code,
        "recorded": row.recorded_at.astimezone(UTC).isoformat(timespec="seconds")
        if row.recorded_at.tzinfo
        else row.recorded_at.replace(tzinfo=UTC).isoformat(timespec="seconds"),
        "outcome": row.outcome,
        "agent": [agent],
        "source": {
            "observer": {"display": "scribe"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
    }
    description = " ".join(p for p in (row.action, row.method, row.path, row.detail) if p)
    if description:
        resource["outcomeDesc"] = f"{description} (HTTP {row.status_code})" if row.status_code else description
    if entities:
        resource["entity"] = entities
    return AuditEvent.model_validate(resource).model_dump(mode="json", exclude_none=True)


def recent_failures(
    database: Database, window_s: float, paths: Sequence[str], *, actor: str | None = None, source_ip: str | None = None
) -> int:
    """How many credentials failed their check on routes `paths` within the last `window_s` seconds, naming
    `actor` and/or from `source_ip` when given: `auth-failure` records, except the throttled refusals (429),
    which checked nothing."""
    from datetime import timedelta

    from sqlalchemy import func, select

    since = datetime.now(UTC) - timedelta(seconds=window_s)
    query = select(func.count()).where(
        AuditRecord.action == "auth-failure",
        AuditRecord.path.in_(paths),
        AuditRecord.status_code != 429,
        AuditRecord.recorded_at >= since,
    )
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    if source_ip is not None:
        query = query.where(AuditRecord.source_ip == source_ip)
    with database.session() as session:
        return session.scalar(query) or 0
