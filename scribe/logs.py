"""Process logging for `scribe serve`: one format, and libraries that would print request data kept quiet.

Application log lines name events, ids and error types, never patient names or transcript words
(tests grep a full run's log for them). At `debug`, SQLAlchemy, HTTP clients and the multipart
parser still stay at WARNING: their debug output carries SQL parameters, URLs and bodies.
"""

from __future__ import annotations

import logging

LEVELS = ("critical", "error", "warning", "info", "debug")
_QUIET = ("sqlalchemy", "httpx", "httpcore", "multipart", "python_multipart", "uvicorn.access", "urllib3",
          "faster_whisper", "asyncio", "websockets", "hpack", "PIL")


def configure_logging(level: str = "info") -> None:
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
