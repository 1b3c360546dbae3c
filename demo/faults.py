"""Faults the demo upstream can be told to make (``PUT /_demo/fault``): 5xx answers,
stalls, 429s with Retry-After and malformed JSON, for all requests or one kind or id,
until cleared or for a number of answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bottle

from demo.wsgi import c42_error

FAULT_MODES = {"error", "timeout", "rate_limit", "malformed"}


@dataclass
class Fault:
    """One fault and what it applies to."""

    mode: str
    kind: str | None = None  # "event", "subscriptions" or None for both
    id: str | None = None  # one event id, or None for all
    status: int = 500
    retry_after: int = 1
    seconds: float = 30.0  # how long "timeout" stalls
    count: int | None = None  # how many responses it affects; None: until cleared

    def matches(self, kind: str, event_id: str) -> bool:
        """Whether it applies to a request for (kind, event id)."""
        return self.kind in (None, kind) and self.id in (None, event_id)


def fault_from(spec: dict[str, Any]) -> Fault:
    """A fault from its JSON description, e.g. ``{"mode": "error", "status": 503}``;
    ValueError names what is wrong."""
    if spec.get("mode") not in FAULT_MODES:
        raise ValueError(f"mode must be one of {sorted(FAULT_MODES)}")
    try:
        return Fault(**spec)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def fault_response(fault: Fault) -> bottle.HTTPResponse | None:
    """The answer a fault gives instead of the data; None: the data (after a stall)."""
    if fault.mode == "error":
        return c42_error(fault.status, "injected failure", "server_error")
    if fault.mode == "rate_limit":
        response = c42_error(429, "Request was throttled.", "throttled")
        response.set_header("Retry-After", str(fault.retry_after))
        return response
    if fault.mode == "malformed":
        return bottle.HTTPResponse('{"data": [', 200, {"Content-Type": "application/json"})
    return None
