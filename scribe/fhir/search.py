"""FHIR search over stored notes: the parameters of docs/fhir.md turned into one indexed SQL query.

Supported on DocumentReference: `_id`, `patient`/`subject`, `category`, `type`, `status`, `date`
(prefixes eq, ne, ge, gt, le, lt, sa, eb on partial or full dates), `_count`, `_offset` (paging),
`_sort` (date or -date), `_summary=count`, `_revinclude=Provenance:target`. Anything else is a
400, so a client never mistakes an ignored filter for an applied one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from scribe.access import readable_notes
from scribe.auth.tokens import Principal
from scribe.errors import InvalidRequestError
from scribe.fhir.resources import LOINC, NOTE_TYPES, US_CORE_CATEGORY
from scribe.store.models import AuditRecord, Note

DEFAULT_COUNT = 20
MAX_COUNT = 200
MAX_OFFSET = 10**9
_DATE = re.compile(
    r"^(eq|ne|ge|gt|le|lt|sa|eb)?(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_STATUS = {"current": ("draft", "signed"), "superseded": ("amended",), "entered-in-error": ("entered-in-error",)}
_LOINC_TO_TYPE = {code: name for name, (code, _display) in NOTE_TYPES.items()}
COMMON = {"_count", "_offset", "_sort", "_summary", "_format"}


class SearchError(InvalidRequestError):
    """A search the server cannot carry out as asked (unknown parameter, bad value): HTTP 400."""


@dataclass
class Search:
    query: Select[Note] | Select[AuditRecord]  # notes for DocumentReference and Provenance, audit for AuditEvent
    count: int
    offset: int
    summary_count: bool = False
    revinclude_provenance: bool = False
    echo: list[tuple[str, str]] = field(default_factory=list)  # the parameters as understood, for `self` links


def _first_of_next_period(moment: datetime, precision: str) -> datetime:
    if precision == "year":
        return moment.replace(year=moment.year + 1)
    if precision == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    if precision == "day":
        return moment + timedelta(days=1)
    if precision == "minute":
        return moment + timedelta(minutes=1)
    return moment + timedelta(seconds=1)


def date_range(value: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end) of a FHIR date search value; the value covers [start, end)."""
    m = _DATE.match(value.strip())
    if not m:
        raise SearchError(f"date {value!r} is not a FHIR date (e.g. ge2024-03-01 or 2024-03-01T10:00:00Z)")
    prefix, year, month, day, hour, minute, second, zone = m.groups()
    try:
        tz = UTC
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        start = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=tz
        )
    except ValueError:
        raise SearchError(f"date {value!r} is not a valid calendar date") from None
    precision = "second" if second else "minute" if minute else "day" if day else "month" if month else "year"
    return prefix or "eq", start.astimezone(UTC), _first_of_next_period(start, precision).astimezone(UTC)


def date_condition(column: Any, value: str) -> Any:
    prefix, start, end = date_range(value)
    return {
        "eq": and_(column >= start, column < end),
        "ne": or_(column < start, column >= end),
        "ge": column >= start,
        "gt": column >= end,
        "sa": column >= end,
        "le": column < end,
        "lt": column < start,
        "eb": column < start,
    }[prefix]


def _token(value: str) -> tuple[str | None, str]:
    system, bar, code = value.partition("|")
    return (system, code) if bar else (None, value)


def _reference_id(value: str, resource: str) -> str:
    """`Patient/123`, `123` or a full URL ending in `Patient/123` -> `123`."""
    value = value.strip()
    if "/" in value:
        kind, _, ident = value.rstrip("/").rpartition("/")
        if not kind.endswith(resource):
            raise SearchError(f"{value!r} is not a {resource} reference")
        return ident
    return value


def _paging(params: list[tuple[str, str]]) -> tuple[int, int]:
    values = dict(params)
    try:
        count = int(values.get("_count", DEFAULT_COUNT))
        offset = int(values.get("_offset", 0))
    except ValueError:
        raise SearchError("_count and _offset must be whole numbers") from None
    if count < 0 or offset < 0:
        raise SearchError("_count and _offset must not be negative")
    if offset > MAX_OFFSET:  # a database takes no larger offset (an overflow there would be a 500)
        raise SearchError(f"_offset must be at most {MAX_OFFSET}")
    return min(count, MAX_COUNT), offset


def visible_notes(query: Select[Note], principal: Principal) -> Select[Note]:
    """The notes `principal` may read over FHIR, for searches and reads alike: a clinician only those of their own
    encounters, drafts included; a system client (the EHR) everyone's, but only once signed (a draft is not part of
    the legal record) unless it holds DRAFTS_SCOPE. A note without a patient (no FHIR view yet) is nobody's."""
    return readable_notes(query.where(Note.document_json.is_not(None)), principal)


def document_search(params: list[tuple[str, str]], principal: Principal) -> Search:
    query = visible_notes(select(Note), principal)
    revinclude = False
    sort_desc = True
    for name, value in params:
        base = name.split(":")[0]
        modifier = name.partition(":")[2]
        if modifier and base not in ("patient", "subject"):
            raise SearchError(f"modifier :{modifier} is not supported on {base}")
        values = [v for v in value.split(",") if v]
        if base == "_id":
            query = query.where(Note.id.in_(values))
        elif base in ("patient", "subject"):
            if modifier and modifier != "Patient":
                raise SearchError(f"{name}: only Patient subjects are stored")
            query = query.where(Note.patient_id.in_([_reference_id(v, "Patient") for v in values]))
        elif base == "category":
            wanted = [_token(v) for v in values]
            if not any(code == "clinical-note" and system in (None, "", US_CORE_CATEGORY) for system, code in wanted):
                query = query.where(false())  # every stored note is a clinical note
        elif base == "type":
            types = []
            for system, code in (_token(v) for v in values):
                if system not in (None, "", LOINC):
                    continue
                if code in _LOINC_TO_TYPE:
                    types.append(_LOINC_TO_TYPE[code])
            query = query.where(Note.note_type.in_(types))
        elif base == "status":
            unknown = [v for v in values if v not in _STATUS]
            if unknown:
                raise SearchError(f"status {unknown[0]!r}: use current, superseded or entered-in-error")
            query = query.where(Note.status.in_([s for v in values for s in _STATUS[v]]))
        elif base == "date":
            if len(values) != 1:
                raise SearchError("one date per date parameter (repeat the parameter for a range)")
            query = query.where(date_condition(Note.created_at, values[0]))
        elif base == "_revinclude":
            if value != "Provenance:target":
                raise SearchError("only _revinclude=Provenance:target is supported")
            revinclude = True
        elif base == "_sort":
            if value not in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
                raise SearchError("_sort supports date and -date")
            sort_desc = value.startswith("-")
        elif base == "_summary":
            if value not in ("count", "false"):
                raise SearchError("_summary supports count")
        elif base not in COMMON:
            raise SearchError(f"unknown search parameter {name!r} for DocumentReference")
    count, offset = _paging(params)
    order = (Note.created_at.desc(), Note.id.desc()) if sort_desc else (Note.created_at, Note.id)
    return Search(
        query.order_by(*order),
        count,
        offset,
        summary_count=dict(params).get("_summary") == "count",
        revinclude_provenance=revinclude,
        echo=[(n, v) for n, v in params if n not in ("_offset", "_format")],
    )


def provenance_search(params: list[tuple[str, str]], principal: Principal) -> Search:
    query = visible_notes(select(Note), principal)
    targeted = False
    for name, value in params:
        if name == "target":
            ids = []
            for ref in value.split(","):
                ref = re.sub(r"/_history/[^/]+$", "", ref.strip())
                ids.append(_reference_id(ref, "DocumentReference"))
            query = query.where(Note.id.in_(ids))
            targeted = True
        elif name == "patient":
            query = query.where(Note.patient_id.in_([_reference_id(v, "Patient") for v in value.split(",")]))
            targeted = True
        elif name not in COMMON:
            raise SearchError(f"unknown search parameter {name!r} for Provenance")
    if not targeted:
        raise SearchError("Provenance search needs target= or patient=")
    count, offset = _paging(params)
    return Search(
        query.order_by(Note.created_at.desc(), Note.id.desc()),
        count,
        offset,
        echo=[(n, v) for n, v in params if n not in ("_offset", "_format")],
    )


def audit_search(params: list[tuple[str, str]]) -> Search:
    query = select(AuditRecord)
    for name, value in params:
        if name == "date":
            query = query.where(date_condition(AuditRecord.recorded_at, value))
        elif name == "patient":
            query = query.where(AuditRecord.patient_id == _reference_id(value, "Patient"))
        elif name in ("agent", "agent-name"):
            query = query.where(AuditRecord.actor == value)
        elif name == "outcome":
            query = query.where(AuditRecord.outcome.in_(value.split(",")))
        elif name == "action":
            query = query.where(AuditRecord.action.in_(value.split(",")))
        elif name == "entity":
            kind, _, ident = value.partition("/")
            query = query.where(AuditRecord.resource_type == kind, AuditRecord.resource_id == ident)
        elif name not in COMMON:
            raise SearchError(f"unknown search parameter {name!r} for AuditEvent")
    count, offset = _paging(params)
    return Search(
        query.order_by(AuditRecord.recorded_at.desc(), AuditRecord.id.desc()),
        count,
        offset,
        summary_count=dict(params).get("_summary") == "count",
        echo=[(n, v) for n, v in params if n not in ("_offset", "_format")],
    )


def run(session: Session, search: Search) -> tuple[int, list[Any]]:
    """(total matches, this page's rows)."""
    total = session.scalar(select(func.count()).select_from(search.query.order_by(None).subquery())) or 0
    if search.summary_count or search.count == 0:
        return total, []
    return total, list(session.scalars(search.query.limit(search.count).offset(search.offset)))
