"""`/metrics` (public, bind-restricted by the deployment): this node's counters in Prometheus text format.

Only counts and states, labelled by route template, status, engine, pass kind or protocol error code: never
ids, names or query values. The middleware that counts requests also writes the access log (`scribe.access`),
one line a request in the same terms. What the domain code counts (ASR passes, drafted notes, stream errors)
lives in `scribe.telemetry`; this module only renders it. `deploy/prometheus/alerts.yaml` alerts on these names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import scribe
from scribe.api.state import service
from scribe.streaming.protocol import ERROR_CODES
from scribe.telemetry import telemetry

router = APIRouter(tags=["health"])
access_log = logging.getLogger("scribe.access")


class RequestCounter:
    """Requests and their total duration per (method, route template, status), since the process started."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self.seconds: defaultdict[tuple[str, str, int], float] = defaultdict(float)
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
            access_log.info(
                '%s "%s %s" %d %.1f ms',
                client[0] if client else "-",
                scope["method"],
                route,
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )


Sample = tuple[dict[str, object], float | int]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """One metric family: its HELP and TYPE lines, then a line per sample (labels in the order given)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{key}="{_escape(str(label))}"' for key, label in labels.items())
        shown = f"{value:.6f}" if isinstance(value, float) else str(value)
        lines.append(f"{name}{{{label_text}}} {shown}" if label_text else f"{name} {shown}")
    return lines


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    from scribe.fhir.delivery import pending_count

    state = service(request)
    counted = telemetry.snapshot()
    lines = [
        *_family("scribe_info", "gauge", "Build of this node.", [({"version": scribe.__version__}, 1)]),
        *_family(
            "scribe_asr_ready",
            "gauge",
            "Whether every mode's speech recognition can stream.",
            [({}, int(state.asr.ready))],
        ),
        *_family(
            "scribe_active_streams", "gauge", "Websocket streams open on this node.", [({}, len(state.active_streams))]
        ),
    ]
    if state.asr.admission is not None:
        streams = state.asr.admission.state()
        lines += _family(
            "scribe_stream_capacity",
            "gauge",
            "Live streams this node takes before refusing new ones (server_busy).",
            [({}, streams.capacity)],
        )
        lines += _family(
            "scribe_streams_refused_total", "counter", "New streams refused with server_busy.", [({}, streams.refused)]
        )
        if streams.final_rtf is not None:
            lines += _family(
                "scribe_final_pass_rtf",
                "gauge",
                "Wall seconds per audio second of the pass that makes finals.",
                [({}, streams.final_rtf)],
            )
        if streams.loaded_partial_rtf is not None:
            lines += _family(
                "scribe_loaded_partial_pass_rtf",
                "gauge",
                "Wall seconds per new audio second of a partial pass under load.",
                [({}, streams.loaded_partial_rtf)],
            )
    lines += _family(
        "scribe_asr_pass_queue_depth",
        "gauge",
        "ASR passes waiting for a worker, by engine.",
        [({"engine": engine}, waiting) for engine, waiting in state.asr.pass_queue_depths().items()],
    )
    lines += _family(
        "scribe_asr_passes_total",
        "counter",
        "Streaming ASR passes run, by engine and kind (final: the pass made finals).",
        [({"engine": engine, "kind": kind}, count) for (engine, kind), count in counted.asr_passes.items()],
    )
    lines += _family(
        "scribe_asr_pass_seconds_total",
        "counter",
        "Wall time of streaming ASR passes, by engine and kind.",
        [({"engine": engine, "kind": kind}, seconds) for (engine, kind), seconds in counted.asr_pass_seconds.items()],
    )
    lines += _family(
        "scribe_stream_errors_total",
        "counter",
        "Protocol error messages sent to streaming clients, by code.",
        [
            ({"code": code}, count)
            for code, count in sorted({**dict.fromkeys(ERROR_CODES, 0), **counted.stream_errors}.items())
        ],
    )
    lines += _family(
        "scribe_notes_drafted_total",
        "counter",
        "Notes drafted, by note engine.",
        [({"engine": engine}, count) for engine, count in counted.notes_drafted.items()],
    )
    lines += _family(
        "scribe_note_draft_seconds_total",
        "counter",
        "Time spent drafting notes, by note engine.",
        [({"engine": engine}, seconds) for engine, seconds in counted.note_draft_seconds.items()],
    )
    if state.settings.ehr_fhir_url:
        lines += _family(
            "scribe_outbox_pending",
            "gauge",
            "Signed notes not yet delivered to the EHR.",
            [({}, pending_count(state.database))],
        )
    rows = state.request_counter.snapshot()
    lines += _family(
        "scribe_http_requests_total",
        "counter",
        "HTTP requests by route template and status.",
        [({"method": method, "route": route, "status": status}, count) for (method, route, status), count, _ in rows],
    )
    lines += _family(
        "scribe_http_request_seconds_total",
        "counter",
        "Time spent answering, by route template and status.",
        [
            ({"method": method, "route": route, "status": status}, seconds)
            for (method, route, status), _, seconds in rows
        ],
    )
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
