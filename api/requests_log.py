"""WSGI middleware: a request id for every request, a log line and metrics for it.

``X-Request-ID`` is taken from the client when it looks like one (1-128 of letters,
digits, ``.``, ``_``, ``:`` and ``-``), otherwise generated; it is sent back on every
response, added to every log record made while the request runs, and passed on to the
fetch task a miss enqueues. What is answered from memory alone is logged at DEBUG (hits,
remembered 404s, and whatever the event loop answered: 304s from a copy, refusals with
400, 401, 404, 405 or a standing 429); everything that read Redis or waited on
upstream at INFO. Every request is counted in the metrics.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from api import metrics
from api.access import CLIENT
from api.bridge import Answer, Answering
from api.tally import Tally
from shared.policy.serving import Served
from shared.telemetry.logs import log_context

log = logging.getLogger("api.requests")
SERVED = "cachedproxy.served"  # environ key: how a view request was served (a Served)
ROUTE = "cachedproxy.route"  # environ key: the route's rule, for a request no router saw
VIEW = "cachedproxy.view"  # environ key: the name of the view a request asked for
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
QUIET = (Served.HIT, Served.NEGATIVE)  # answered from the cache as it stands: DEBUG

StartResponse = Callable[..., Any]


def request_id(given: str | None) -> str:
    """The client's request id when it looks like one, else a new one."""
    return given if given and REQUEST_ID_RE.fullmatch(given) else os.urandom(16).hex()


class RequestLog:
    """The outermost middleware: request id, log line and metrics of every request."""

    def __init__(self, app: Answering, tally: Tally | None = None) -> None:
        self.app = app
        self.tally = tally  # each minute's outcomes by view, for the status page

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        body = self._logged(environ, start_response, self.app, quiet=False)
        assert body is not None  # a WSGI app always answers
        return body

    def answer(self, environ: dict[str, Any], start_response: StartResponse
               ) -> Iterable[bytes] | None:
        """The app's answer without I/O (api/bridge.py), logged at DEBUG; or None."""
        return self._logged(environ, start_response, self.app.answer, quiet=True)

    def _logged(self, environ: dict[str, Any], start_response: StartResponse, app: Answer,
                quiet: bool) -> Iterable[bytes] | None:
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        started = time.perf_counter()
        seen: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = int(status.split()[0]), headers
            return start_response(status, [*headers, ("X-Request-ID", rid)], exc_info)

        with log_context(request_id=rid):
            body = app(environ, start)
            if body is None:
                return None
            seconds = time.perf_counter() - started
            status = seen.get("status", 500)
            served = environ.get(SERVED)
            route = str(environ.get(ROUTE) or getattr(environ.get("bottle.route"), "rule",
                                                      "unmatched"))
            view = environ.get(VIEW, "")
            metrics.observe(route, environ.get("REQUEST_METHOD", ""), status, served, seconds,
                            view)
            if served is not None and self.tally is not None:
                self.tally.count(view, served.value)
            level = logging.DEBUG if quiet or served in QUIET else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "request", extra={
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": status,
                    "cache": served.value if served is not None else None,
                    "client": environ.get(CLIENT),  # the API key's name, never the key
                    "duration_ms": round(seconds * 1000, 2),
                })
        return body
