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
"""

from __future__ import annotations

import importlib
import logging
import os
import re

LEVELS = ("critical", "error", "warning", "info", "debug")
_QUIET = ("sqlalchemy", "httpx", "httpcore", "multipart", "python_multipart", "uvicorn.access", "urllib3",
          "faster_whisper", "asyncio", "websockets", "hpack", "PIL", "alembic.runtime.plugins")


def configure_logging(level: str = "info") -> None:
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
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


REDACTED = "[redacted]"
_SECRET_NAMES = ("access_token|refresh_token|id_token|client_assertion|assertion|token|ticket|code|password|"
                 "csrf_token|scribe_session")
_SECRET_PARAMETER = re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})=[^&\s\"',;)]*")
_SECRET_HEADER_QUOTED = re.compile(r"""(?i)((?:proxy-)?authorization|set-cookie|cookie|x-csrf-token)(['"]?\s*[:=,]\s*b?)"""
                                   r"""(['"]).*?\3""")
_SECRET_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization|set-cookie|cookie|x-csrf-token)(\s*[:=]\s*)(?!\[redacted\])"
                            r"(?!['\"])[^\r\n]+")
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
