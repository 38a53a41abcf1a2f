"""Process logging for `scribe serve`: one format, and libraries that would print request data kept quiet.

Application log lines name events, ids and error types, never patient names or transcript words
(tests grep a full run's log for them). At `debug`, SQLAlchemy, HTTP clients and the multipart
parser still stay at WARNING: their debug output carries SQL parameters, URLs and bodies.
uvicorn hands its own logger to the websockets library, which at debug prints every frame
(partial transcripts included); those records are dropped whatever the level.
"""

from __future__ import annotations

import importlib
import logging
import os

LEVELS = ("critical", "error", "warning", "info", "debug")
_QUIET = ("sqlalchemy", "httpx", "httpcore", "multipart", "python_multipart", "uvicorn.access", "urllib3",
          "faster_whisper", "asyncio", "websockets", "hpack", "PIL", "alembic.runtime.plugins")


def configure_logging(level: str = "info") -> None:
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
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
