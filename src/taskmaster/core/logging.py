"""Structured logs: JSON lines in production, readable lines in a terminal.

The correlation id (`request_id`) and other context travel in structlog's contextvars, so every line
written while serving a request or running a job carries them. Secrets are masked before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_WORDS = ("password", "secret", "token", "authorization", "api_key", "apikey", "cookie")
_NOT_SECRET_SUFFIXES = ("_file", "_path", "_id", "_prefix")  # where a secret lives or which one, not its value
_MASK = "***"


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if lowered.endswith(_NOT_SECRET_SUFFIXES):
            continue
        if any(word in lowered for word in _SECRET_WORDS) and event[key] is not None:
            event[key] = _MASK
    return event


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library (uvicorn, Alembic, SQLAlchemy) through one renderer."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if as_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        handler.addFilter(_quiet_chatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log is replaced by ours (it carries the request id); its handlers defer to root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


# Libraries that narrate their start-up at info level (each migration step, uvicorn's banner): below warning, they
# are shown only at debug level. A filter on the handler, so that a library resetting its logger's level (uvicorn
# configures its own at start) cannot undo it.
_CHATTY = ("alembic", "uvicorn.error")


def _quiet_chatter(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not record.name.startswith(_CHATTY)


def current_request_id() -> str | None:
    """The correlation id bound in this context (by the API middleware or a running job), if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
