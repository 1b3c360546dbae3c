"""The demo upstream: C42's event and subscription endpoints, plus a control API.

C42 part, under ``/api/v2``: token auth, ``/events/<id>/``,
``/event-subscriptions/?event_ids=[<id>]&limit=&offset=``, strong or weak ETags,
Last-Modified, 304s and C42 error bodies.

The GitHub part (demo/github.py) is served beside it, and the control API under
``/_demo`` (demo/control.py) changes its data, latency and faults (demo/faults.py).
"""

from __future__ import annotations

import copy
import hmac
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from wsgiref.simple_server import WSGIServer

import bottle

from demo.control import control_app
from demo.data import Event, Subscriber, sample_events
from demo.faults import Fault, fault_from, fault_response
from demo.github import PREFIX as GITHUB
from demo.github import DemoGitHub
from demo.wsgi import c42_error, conditional, threaded_wsgi_server

log = logging.getLogger(__name__)

API = "/api/v2"


def demo_env(configured: Callable[[str], bool], host: str, port: int, token: str
             ) -> dict[str, str]:
    """What points the upstreams whose base URL is not ``configured`` (by upstream name)
    at a demo upstream on ``host:port``; empty when every one is configured."""
    wanted = {"c42": f"http://{host}:{port}{API}", "github": f"http://{host}:{port}{GITHUB}"}
    out = {}
    for name, url in wanted.items():
        if not configured(name):
            out.update({f"{name.upper()}_BASE_URL": url, f"{name.upper()}_TOKEN": token})
    return out
EVENT_IDS_RE = re.compile(r"\[([A-Za-z0-9_-]{1,128})\]")
class DemoUpstream:
    """State of the demo upstream; every method is safe to call from any thread."""

    def __init__(self, token: str, events: dict[str, Event] | None = None) -> None:
        self.token = token
        self._initial = events if events is not None else sample_events()
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)
        self._release = threading.Event()  # wakes stalled responses on reset/shutdown
        self.github = DemoGitHub(token)
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        """Back to the initial events, with counters, faults and latency cleared."""
        with self._lock:
            self.events = copy.deepcopy(self._initial)
            self.requests: Counter[tuple[str, str, int]] = Counter()
            self.started: Counter[tuple[str, str]] = Counter()
            self.bytes_sent: Counter[tuple[str, str]] = Counter()
            self.validators = True  # False: no ETag/Last-Modified, never a 304
            self.fault: Fault | None = None
            self.latency = 0.0
            self.answer_first = False  # True: the answer is made before the latency
            self.in_flight = 0
            self.peak = 0  # the most requests answered at once
        self.github.reset()
        self._release.set()
        self._release = threading.Event()

    def release(self) -> None:
        """End every stalled response now (used at shutdown)."""
        self._release.set()

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests seen, as {kind: {event id: {status: count}}}."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self._lock:
            for (kind, event_id, status), n in self.requests.items():
                out.setdefault(kind, {}).setdefault(event_id, {})[str(status)] = n
        return out

    def total_requests(self) -> int:
        """Requests answered since the last reset, of every kind."""
        with self._lock:
            return sum(self.requests.values())

    def peak_in_flight(self, reset: bool = False) -> int:
        """The most requests answered at once since the last reset (``reset``: from now)."""
        with self._lock:
            peak = self.peak
            if reset:
                self.peak = self.in_flight
            return peak

    def body_bytes(self) -> dict[str, dict[str, int]]:
        """Response body bytes sent, as {kind: {event id: bytes}}."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (kind, event_id), n in self.bytes_sent.items():
                out.setdefault(kind, {})[event_id] = n
        return out

    def set_validators(self, enabled: bool) -> None:
        """Send ETag/Last-Modified and 304s (the default), or neither."""
        with self._lock:
            self.validators = enabled

    def count(self, kind: str, event_id: str, status: int | None = None) -> int:
        """Requests seen for (kind, event id), of one status or all."""
        with self._lock:
            return sum(
                n for (k, i, s), n in self.requests.items()
                if k == kind and i == event_id and status in (None, s)
            )

    def wait_for_request(self, kind: str, event_id: str, timeout: float) -> bool:
        """Block until a request for (kind, event id) has arrived since the last reset."""
        with self._started:
            return self._started.wait_for(lambda: self.started[(kind, event_id)] > 0, timeout)

    def put_event(self, event_id: str, title: str | None, names: list[str] | None) -> None:
        """Change an event (or add one): its title and subscribers' first names."""
        with self._lock:
            event = self.events.get(event_id) or Event(event_id, title or event_id)
            if title is not None:
                event.title = title
            if names is not None:
                event.subscribers = [
                    Subscriber(n, "Demo", f"user-{i:04d}") for i, n in enumerate(names)
                ]
            event.version += 1
            event.modified = max(time.time(), event.modified + 1)
            self.events[event_id] = event

    def remove_event(self, event_id: str) -> None:
        """Remove an event: it is 404 from now on."""
        with self._lock:
            self.events.pop(event_id, None)

    def set_fault(self, fault: Fault | None) -> None:
        """Make a fault from now on (None: none)."""
        with self._lock:
            self.fault = fault

    def set_fault_from(self, spec: dict[str, Any]) -> None:
        """Set a fault from its JSON description, e.g. ``{"mode": "error", "status": 503}``."""
        self.set_fault(fault_from(spec))

    def set_latency(self, seconds: float, answer_first: bool = False) -> None:
        """Delay every answer; ``answer_first`` makes it from the data as it is when the
        request arrives (a change meanwhile is not in it), as a slow network would."""
        with self._lock:
            self.latency = seconds
            self.answer_first = answer_first

    # --- serving -------------------------------------------------------------------

    def _take_fault(self, kind: str, event_id: str) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None or not fault.matches(kind, event_id):
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.fault = None
            return fault

    def _respond(
        self, kind: str, event_id: str, build: Any
    ) -> bottle.HTTPResponse:
        """Count, delay and fault a response; ``build`` makes the normal one."""
        early = build() if self.answer_first else None  # before anyone hears it arrived
        with self._started:
            self.started[(kind, event_id)] += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._started.notify_all()
        try:
            return self._answer(kind, event_id, build, early)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, kind: str, event_id: str, build: Any,
                early: bottle.HTTPResponse | None) -> bottle.HTTPResponse:
        release = self._release
        if self.latency:
            release.wait(self.latency)
        fault = self._take_fault(kind, event_id)
        if fault is not None and fault.mode == "timeout":
            release.wait(fault.seconds)
        response = fault_response(fault) if fault is not None else None
        if response is None:
            response = early if early is not None else build()
        with self._lock:
            self.requests[(kind, event_id, response.status_code)] += 1
            self.bytes_sent[(kind, event_id)] += len(response.body or b"")
        return response

    def _authorized(self) -> bool:
        given = bottle.request.get_header("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Token {self.token}".encode())

    def _build_app(self) -> bottle.Bottle:
        app = bottle.Bottle()
        app.merge(self.github.app)
        app.merge(control_app(self))

        @app.get(f"{API}/events/<event_id>/")
        def event(event_id: str) -> bottle.HTTPResponse:
            if not self._authorized():
                return unauthorized()
            return self._respond("event", event_id, lambda: self._event(event_id))

        @app.get(f"{API}/event-subscriptions/")
        def subscriptions() -> bottle.HTTPResponse:
            if not self._authorized():
                return unauthorized()
            match = EVENT_IDS_RE.fullmatch(bottle.request.query.get("event_ids", ""))
            if match is None:
                return c42_error(400, "event_ids must look like [<id>]", "invalid")
            try:
                limit = int(bottle.request.query.get("limit", "10"))
                offset = int(bottle.request.query.get("offset", "0"))
            except ValueError:
                return c42_error(400, "limit and offset must be integers", "invalid")
            if not 1 <= limit <= 100 or offset < 0:
                return c42_error(400, "limit must be 1-100, offset >= 0", "invalid")
            event_id = match.group(1)
            return self._respond(
                "subscriptions", event_id, lambda: self._subscriptions(event_id, limit, offset)
            )

        return app

    def _event(self, event_id: str) -> bottle.HTTPResponse:
        with self._lock:
            event = copy.deepcopy(self.events.get(event_id))
        if event is None:
            return c42_error(404, "Event not found.", "not_found")
        body = {
            "meta_data": {"status": 200},
            "data": [{
                "id": event.id,
                "title": event.title,
                "event_type": "normal",
                "start": "2026-12-01T18:00:00Z",
                "end": "2026-12-01T22:00:00Z",
                "description": f"{event.title} (demo data)",
            }],
        }
        return conditional(body, event, self.validators)

    def _subscriptions(self, event_id: str, limit: int, offset: int) -> bottle.HTTPResponse:
        with self._lock:
            event = copy.deepcopy(self.events.get(event_id))
        subscribers = event.subscribers if event is not None else []
        page = subscribers[offset:offset + limit]
        body = {
            "data": [
                {"id": f"{event_id}-{s.user_id}", "rsvp_status": "attending",
                 "subscriber": asdict(s)}
                for s in page
            ],
            "meta_data": {"count": len(subscribers), "offset": offset, "limit": limit},
        }
        return conditional(body, event, self.validators)


def unauthorized() -> bottle.HTTPResponse:
    """Calendar42's 401."""
    return c42_error(401, "Authentication credentials were not provided.", "not_authenticated")


def make_demo_server(upstream: DemoUpstream, host: str, port: int) -> WSGIServer:
    """The demo upstream's own HTTP server on ``host:port`` (0: a free port)."""
    return threaded_wsgi_server(upstream.app, host, port)
