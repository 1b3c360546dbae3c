"""The demo upstream's control API, under ``/_demo``, for tests and demonstrations:
``GET counters``, ``POST reset``, ``PUT events/<id>`` (change or add an event),
``DELETE events/<id>``, ``PUT validators`` (``{"enabled": false}``: no validators, no
304s), ``PUT fault`` / ``DELETE fault`` (5xx, timeout, 429, malformed JSON) and ``PUT
latency``."""

from __future__ import annotations

from typing import Any, Protocol

import bottle

from demo.wsgi import json_body


class Controlled(Protocol):
    """What the control API changes and reads: the demo upstream (demo/server.py)."""

    github: Any

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests seen, as {kind: {event id: {status: count}}}."""

    def body_bytes(self) -> dict[str, dict[str, int]]:
        """Response body bytes sent, as {kind: {event id: bytes}}."""

    def set_validators(self, enabled: bool) -> None:
        """Send validators and 304s, or neither."""

    def reset(self) -> None:
        """Back to the initial data, counters cleared."""

    def put_event(self, event_id: str, title: str | None, names: list[str] | None) -> None:
        """Change or add an event."""

    def remove_event(self, event_id: str) -> None:
        """Remove an event."""

    def set_fault(self, fault: Any) -> None:
        """Make a fault from now on (None: none)."""

    def set_fault_from(self, spec: dict[str, Any]) -> None:
        """Make the fault a JSON description names."""

    def set_latency(self, seconds: float, answer_first: bool = False) -> None:
        """Delay every answer."""


def control_app(upstream: Controlled) -> bottle.Bottle:
    """The ``/_demo`` routes of ``upstream``, to merge into its app."""
    app = bottle.Bottle()

    @app.get("/_demo/counters")
    def counters() -> bottle.HTTPResponse:
        return json_body(200, {"requests": upstream.counters(), "bytes": upstream.body_bytes(),
                               "github": upstream.github.counters()})

    @app.put("/_demo/validators")
    def put_validators() -> bottle.HTTPResponse:
        upstream.set_validators(bool((bottle.request.json or {}).get("enabled", True)))
        return json_body(200, {"status": "validators set"})

    @app.post("/_demo/reset")
    def reset() -> bottle.HTTPResponse:
        upstream.reset()
        return json_body(200, {"status": "reset"})

    @app.put("/_demo/events/<event_id>")
    def put_event(event_id: str) -> bottle.HTTPResponse:
        body = bottle.request.json or {}
        upstream.put_event(event_id, body.get("title"), body.get("names"))
        return json_body(200, {"status": "changed"})

    @app.delete("/_demo/events/<event_id>")
    def delete_event(event_id: str) -> bottle.HTTPResponse:
        upstream.remove_event(event_id)
        return json_body(200, {"status": "removed"})

    @app.put("/_demo/fault")
    def put_fault() -> bottle.HTTPResponse:
        try:
            upstream.set_fault_from(dict(bottle.request.json or {}))
        except ValueError as exc:
            return json_body(400, {"error": str(exc)})
        return json_body(200, {"status": "fault set"})

    @app.delete("/_demo/fault")
    def delete_fault() -> bottle.HTTPResponse:
        upstream.set_fault(None)
        return json_body(200, {"status": "fault cleared"})

    @app.put("/_demo/latency")
    def put_latency() -> bottle.HTTPResponse:
        upstream.set_latency(float((bottle.request.json or {}).get("seconds", 0)))
        return json_body(200, {"status": "latency set"})

    return app
