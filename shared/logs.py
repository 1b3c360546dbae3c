"""JSON-lines logging for every process: one event per line."""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(levelname)s %(name)s %(message)s"
RENAMES = {"levelname": "level", "name": "logger", "message": "event"}


def json_formatter() -> logging.Formatter:
    return JsonFormatter(FORMAT, rename_fields=RENAMES, timestamp=True, json_ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log record of this process to ``stream`` as one JSON object a line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
