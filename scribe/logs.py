"""Process logging for `scribe serve`: one format, and libraries that would print request data kept quiet.

Application log lines name events, ids and error types, never patient names or transcript words
(tests grep a full run's log for them). At `debug`, SQLAlchemy, HTTP clients and the multipart
parser still stay at WARNING: their debug output carries SQL parameters, URLs and bodies.
uvicorn hands its own logger to the websockets library, which at debug prints every frame
(partial transcripts included); those records are dropped whatever the level.

No credential reaches a log: every record passes `RedactSecrets` at the root handler, which rewrites
query values such as `?ticket=` and `?access_token=`, Authorization and Cookie values, bearer tokens, and
every query value of a request line (uvicorn's websocket lines print the raw query), to `[redacted]`.
uvicorn's access log stays off for the same reason (it prints raw paths and queries, where a patient
search's `q=` is a name); `scribe.access` logs each request by its route template instead.

`SCRIBE_LOG_FORMAT=json` writes every line (scribe's, uvicorn's, the access log) as one JSON object
for a log collector, redacted the same way, with this node's id, the request's id and, on a stream's
lines, the encounter's id: the API's middleware and the stream route set them in the context variables
below, which domain code can read without importing the web layer.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET = (
    "sqlalchemy",
    "httpx",
    "httpcore",
    "multipart",
    "python_multipart",
    "uvicorn.access",
    "urllib3",
    "faster_whisper",
    "asyncio",
    "websockets",
    "hpack",
    "PIL",
    "alembic.runtime.plugins",
)


request_id: ContextVar[str | None] = ContextVar("scribe_request_id", default=None)
"""The id of the HTTP request or websocket connection being served (set by the API's RequestIdMiddleware)."""
encounter_id: ContextVar[str | None] = ContextVar("scribe_encounter_id", default=None)
"""The encounter a stream is about (set by the stream route once the id is valid)."""


class CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes to `sys.stderr` as it is when a record is emitted, not when logging was set up: a command run
    in-process (tests, embedding) may have been given a stderr that is closed by the time a later record comes."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler sets it; the property reads sys.stderr instead
        pass


def configure_logging(level: str = "info", log_format: str = "text", *, node_id: str | None = None) -> None:
    """One stderr handler at the root for every logger, in `log_format`, with credentials redacted."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter(node_id) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactSecrets())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(log_format == "json")  # a library's warning too becomes a line a collector can read
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # a uvicorn started with its own log config before
        server_logger = logging.getLogger(name)  # gave these their own handlers, level and no propagation
        server_logger.handlers.clear()
        server_logger.setLevel(logging.NOTSET)
        server_logger.propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropLibraryDebug) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(DropLibraryDebug("websockets"))


class DropLibraryDebug(logging.Filter):
    """Drops debug records emitted by one library's code, whichever logger it was handed."""

    def __init__(self, package: str) -> None:
        super().__init__()
        self.root = os.path.dirname(importlib.import_module(package).__file__ or "") + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not record.pathname.startswith(self.root)


ACCESS_FIELDS = ("method", "route", "status", "duration_ms")
"""Fields the access log passes as `extra`: the JSON format gives them keys of their own."""


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line: time (ISO 8601 UTC), level, logger, message, node, the request and
    encounter ids when set, the access log's fields, and the (redacted) traceback."""

    def __init__(self, node_id: str | None = None) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "node": self.node_id,
        }
        for name, value in (("request_id", request_id.get()), ("encounter_id", encounter_id.get())):
            if value is not None:
                line[name] = value
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str)


REDACTED = "[redacted]"
_SECRET_NAMES = (
    "access_token|refresh_token|id_token|client_assertion|assertion|token|ticket|code|password|"
    "csrf_token|scribe_session"
)
_SECRET_PARAMETER = re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})=[^&\s\"',;)]*")
_SECRET_HEADER_QUOTED = re.compile(
    r"""(?i)((?:proxy-)?authorization|set-cookie|cookie|x-csrf-token)(['"]?\s*[:=,]\s*b?)"""
    r"""(['"]).*?\3"""
)
_SECRET_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|set-cookie|cookie|x-csrf-token)(\s*[:=]\s*)(?!\[redacted\])"
    r"(?!['\"])[^\r\n]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?!realm\b|\[redacted\])[A-Za-z0-9._~+/-]+=*")
_REQUEST_QUERY = re.compile(r"\b((?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|WebSocket) [^\s?\"]*\?)([^\s\"]*)")


def redact(text: str) -> str:
    """`text` with every credential it carries, and every query value of a request line in it, as [redacted]."""
    text = _REQUEST_QUERY.sub(lambda m: m[1] + re.sub(r"=[^&]*", "=" + REDACTED, m[2]), text)
    text = _SECRET_PARAMETER.sub(lambda m: f"{m[1]}={REDACTED}", text)
    text = _SECRET_HEADER_QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{REDACTED}{m[3]}", text)
    text = _SECRET_HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (with its arguments merged in), traceback and stack with `redact`, so whatever
    a library logs (uvicorn's `"WebSocket /path?ticket=…" [accepted]`, a URL in an exception) carries no credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = redact(record.getMessage()), ()
        except Exception:  # arguments that do not fit the message: logging reports it; redact what it will print
            record.msg = redact(str(record.msg))
            record.args = tuple(redact(str(arg)) for arg in record.args) if isinstance(record.args, tuple) else ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
