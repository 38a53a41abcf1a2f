"""Request auditing: a route declares what it does with `Depends(audited(action, type))`, fills in the
resource and patient as it learns them, and the middleware writes the record with the final status,
success or failure. 401s are audited where authentication fails (one `auth-failure` record each).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from fastapi import Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from scribe.api.state import service
from scribe.audit import ANONYMOUS, Actor, record

log = logging.getLogger("scribe.audit")


@dataclass
class AuditScope:
    action: str
    resource_type: str | None
    resource_id: str | None = None
    patient_id: str | None = None
    detail: str | None = None


@functools.cache
def audited(action: str, resource_type: str | None = None):
    """Dependency factory: this request is one audited `action` on `resource_type` (one dependency per pair, so
    a route and the dependency loading its resource share one record)."""

    def declare(request: Request) -> AuditScope:
        scope = AuditScope(action, resource_type, resource_id=request.path_params.get("id"))
        request.state.audit = scope
        return scope

    return declare


def actor_of(request: Request) -> Actor:
    principal = getattr(request.state, "principal", None)
    address = request.client.host if request.client else None
    if principal is None:
        return Actor(ANONYMOUS.name, ANONYMOUS.kind, address)
    return Actor(principal.subject, principal.kind, address)


def route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class AuditMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            await self._write(request, 500)
            raise
        if response.status_code != 401:
            await self._write(request, response.status_code)
        return response

    @staticmethod
    async def _write(request: Request, status: int) -> None:
        scope: AuditScope | None = getattr(request.state, "audit", None)
        if scope is None:
            return
        try:
            await asyncio.to_thread(
                record,
                service(request).database,
                actor_of(request),
                scope.action,
                resource_type=scope.resource_type,
                resource_id=scope.resource_id,
                patient_id=scope.patient_id,
                status=status,
                method=request.method,
                path=route_template(request),
                detail=scope.detail,
            )
        except Exception as exc:  # losing an audit row must be loud, but never turn a success into an error
            log.error("audit record not written: %s", type(exc).__name__)
