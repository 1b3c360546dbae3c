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


class RoutineTasks(logging.Filter):
    """Celery's INFO lines about routine tasks (beat's "Sending due task", the worker's
    "received" and "succeeded") become DEBUG: beat's tick runs every second, and its
    three lines a second would be most of an idle system's log. Errors stay as they are."""

    def __init__(self, tasks: set[str]) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        """Lower a routine task's INFO record to DEBUG; keep it only if DEBUG is on."""
        if record.levelno != logging.INFO or not record.name.startswith("celery."):
            return True
        args = record.args
        if isinstance(args, Mapping):  # the worker's: a dict with the task's name
            task = args.get("name")
        elif isinstance(args, tuple) and len(args) == 2:  # beat's: (entry, task)
            task = args[1]
        else:
            return True
        if task not in self.tasks:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def json_formatter() -> logging.Formatter:
    """The formatter of JSON log lines."""
    return JsonFormatter(FORMAT, rename_fields=RENAMES, timestamp=True, json_ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None,
                      routine_tasks: set[str] | None = None) -> None:
    """Send every log record of this process to ``stream`` as one JSON object a line;
    Celery's lines about ``routine_tasks`` at DEBUG (``RoutineTasks``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    if routine_tasks:
        handler.addFilter(RoutineTasks(routine_tasks))
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
