"""JSON bodies as the API sends them: compact UTF-8, one content type."""

from __future__ import annotations

import functools
import json
from typing import Any

import bottle

JSON_TYPE = "application/json; charset=utf-8"


def encode(body: Any) -> bytes:
    """A JSON body as the API sends it: compact UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None
                  ) -> bottle.HTTPResponse:
    """A JSON answer with ``status`` and any more ``headers``."""
    return bottle.HTTPResponse(encode(body), status, {"Content-Type": JSON_TYPE, **(headers or {})})


@functools.lru_cache(maxsize=256)  # refusals repeat: the same few messages
def error_body(status: int, code: str, message: str) -> bytes:
    """A JSON error's body: ``{"error": {"status", "code", "message"}}``."""
    return encode({"error": {"status": status, "code": code, "message": message}})
