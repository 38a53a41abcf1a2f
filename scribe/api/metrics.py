"""`/metrics` (public, bind-restricted by the deployment): this node's counters in Prometheus text format.

Only counts and states, labelled by route template and status: never ids, names or query values. The
middleware that counts also writes the access log (`scribe.access`), one line a request in the same terms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import scribe

router = APIRouter(tags=["health"])
access_log = logging.getLogger("scribe.access")


class RequestCounter:
    """Requests and their total duration per (method, route template, status), since the process started."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self.seconds: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def add(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.counts[(method, route, status)] += 1
            self.seconds[(method, route, status)] += seconds

    def snapshot(self) -> list[tuple[tuple[str, str, int], int, float]]:
        with self._lock:
            return [(key, count, self.seconds[key]) for key, count in sorted(self.counts.items())]


class MetricsMiddleware:
    """Counts and logs every HTTP request by its route template once it is answered: the raw path and query may
    carry a patient's name (a search's `q=`) or a credential (`?access_token=`), the template never does."""

    def __init__(self, app: ASGIApp, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            seconds = time.perf_counter() - started
            self.counter.add(scope["method"], route, status, seconds)
            client = scope.get("client")
            access_log.info('%s "%s %s" %d %.1f ms', client[0] if client else "-", scope["method"], route, status,
                            seconds * 1000)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    from scribe.delivery import pending_count

    state = request.app.state
    lines = ["# HELP scribe_info Build of this node.", "# TYPE scribe_info gauge",
             f'scribe_info{{version="{scribe.__version__}"}} 1',
             "# HELP scribe_asr_ready Whether speech recognition is loaded.", "# TYPE scribe_asr_ready gauge",
             f"scribe_asr_ready {int(state.asr.engine is not None)}",
             "# HELP scribe_active_streams Websocket streams open on this node.", "# TYPE scribe_active_streams gauge",
             f"scribe_active_streams {len(state.active_streams)}"]
    if state.settings.ehr_fhir_url:
        lines += ["# HELP scribe_outbox_pending Signed notes not yet delivered to the EHR.",
                  "# TYPE scribe_outbox_pending gauge", f"scribe_outbox_pending {pending_count(state.database)}"]
    lines += ["# HELP scribe_http_requests_total HTTP requests by route template and status.",
              "# TYPE scribe_http_requests_total counter"]
    rows = state.request_counter.snapshot()
    for (method, route, status), count, _ in rows:
        lines.append(f'scribe_http_requests_total{{method="{method}",route="{_escape(route)}",status="{status}"}} '
                     f"{count}")
    lines += ["# HELP scribe_http_request_seconds_total Time spent answering, by route template and status.",
              "# TYPE scribe_http_request_seconds_total counter"]
    for (method, route, status), _, seconds in rows:
        lines.append(f'scribe_http_request_seconds_total{{method="{method}",route="{_escape(route)}",'
                     f'status="{status}"}} {seconds:.6f}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
