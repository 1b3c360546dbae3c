"""JSON-lines logging for every process: one event per line."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import IO, NoReturn

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(levelname)s %(name)s %(message)s"
RENAMES = {"levelname": "level", "name": "logger", "message": "event"}


# What the current request or task is; added to every log record made meanwhile.
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add these fields (e.g. request_id, task_id) to log records made inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def context_value(name: str) -> str | None:
    """A field of the current log context (the request id), or None."""
    return _context.get().get(name)


class ContextFilter(logging.Filter):
    """Adds the current log context (request id, task id) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the context's fields to ``record``; never drops one."""
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def json_formatter() -> logging.Formatter:
    """The formatter of JSON log lines."""
    return JsonFormatter(FORMAT, rename_fields=RENAMES, timestamp=True, json_ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log record of this process to ``stream`` as one JSON object a line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become JSON lines too


def refuse_to_start(error: Exception) -> NoReturn:
    """End a process that cannot start (a bad option, a broken catalogue) with one JSON
    line saying why, and exit code 2."""
    configure_logging("INFO")
    logging.getLogger("cachedproxy").error("cannot start", extra={"error": str(error)})
    sys.exit(2)
