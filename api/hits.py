"""Hits: a view answered from this process's copy, on the event loop, without I/O.

A request path that a view's route served before is remembered with its view and
resources (``remember``). The next request for it is answered by ``Hits.answer`` before
any routing when its copy (api/copies.py) may be served as a hit: fresh, made in the
tracking session that is current (api/tracker.py: no entry of its resources changed
since), and no read of its resources due to be recorded for the refresh schedule. The
response is the one the route would give (the headers come from api/headers.py for
both). Anything else is None: the request goes the route's way (api/views.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from api.bridge import beyond_path
from api.copies import Copies, Copy, Key
from api.headers import Headers, copy_status, negative_headers, view_headers
from api.requests_log import ROUTE, SERVED, VIEW
from api.responses import JSON_TYPE
from api.tracker import Tracker
from shared.bounded import LRU
from shared.config.settings import Settings
from shared.policy import http
from shared.policy.serving import Served
from shared.policy.timing import ReadThrottle

PATHS = 8192  # request paths whose view this process remembers
REVALIDATING = 1.0  # seconds between requests sent to revalidate a stale remembered 404

StartResponse = Callable[..., Any]


class Path(NamedTuple):
    """What a request path served before names: its route's rule (for the metrics), the
    view and parameters, the resources, and the settings they were worked out under."""

    rule: str
    key: Key
    resources: tuple[str, ...]
    settings: Settings


def _send(environ: dict[str, Any], start_response: StartResponse, status: str,
          headers: Headers, body: bytes) -> list[bytes]:
    start_response(status, headers)
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


class Hits:
    """The hits of one API process, from its ``copies`` while the ``tracker`` of entry
    changes vouches for them."""

    def __init__(self, copies: Copies, tracker: Tracker | None, reads: ReadThrottle,
                 clock: Callable[[], float], current: Callable[[], Settings]) -> None:
        self.copies = copies
        self.tracker = tracker
        self.reads = reads  # the reads this process is due to record (api/reader.py)
        self.clock = clock
        self.current = current  # the settings in force now
        self.paths: LRU[str, Path] = LRU(PATHS)
        self._revalidating: LRU[Key, float] = LRU(PATHS)  # stale remembered 404s asked again

    def answer(self, environ: dict[str, Any], start_response: StartResponse
               ) -> Iterable[bytes] | None:
        """A request for a path served before, answered without I/O from its copy as the
        route would answer it; None: it goes the route's way."""
        method = environ["REQUEST_METHOD"]
        path = self.paths.peek(environ["PATH_INFO"])
        if (path is None or method not in ("GET", "HEAD") or beyond_path(environ)
                or path.settings is not self.current()):
            return None
        now = self.clock()
        copy = self.current_copy(path.key, path.resources, now, blocking=False)
        if copy is None:
            copy = self.revalidating_404(path, now)
            if copy is None:
                return None
            environ[ROUTE] = path.rule  # as the route answers a stale remembered 404
            return _send(environ, start_response, "404 Not Found", [
                ("Content-Type", JSON_TYPE), ("Content-Length", str(len(copy.body)))],
                copy.body)
        environ[ROUTE], environ[VIEW] = path.rule, path.key[0]
        if copy.status == 404:
            environ[SERVED] = Served.NEGATIVE
            return _send(environ, start_response, "404 Not Found",
                         negative_headers(path.settings.cache, len(copy.body)), copy.body)
        environ[SERVED] = Served.HIT
        unchanged = http.not_modified(environ.get("HTTP_IF_NONE_MATCH"),
                                      environ.get("HTTP_IF_MODIFIED_SINCE"), copy.etag,
                                      copy.modified)
        headers = view_headers(copy, copy_status(copy, now), now, path.settings.cache,
                               None if unchanged else len(copy.body))
        if unchanged:
            start_response("304 Not Modified", headers)
            return []
        return _send(environ, start_response, "200 OK", headers, copy.body)

    def current_copy(self, key: Key, resources: Sequence[str], now: float,
                     blocking: bool = True) -> Copy | None:
        """This process's copy of the view if it may be served as a hit without Redis:
        fresh, made in the current tracking session, nothing pending against it, and no
        read of its resources due to be recorded. Not ``blocking``: None as well where
        telling would wait on Redis."""
        copy = self.copies.get(key)
        tracker = self.tracker
        if (tracker is None or copy is None or not copy.session or now >= copy.fresh_until
                or self.reads.pending(resources, now)):
            return None
        if tracker.current(now, blocking) != copy.session:
            return None
        return copy if self.copies.get(key) is copy else None  # notices applied may drop it

    def revalidating_404(self, path: Path, now: float) -> Copy | None:
        """A remembered 404 gone stale (within stale-while-revalidate) while one request
        went the route's way and asked for it again: its copy, to answer the others on
        the event loop until the new entry's notice drops it, as the route would answer
        them meanwhile. None for the request that should go (one per REVALIDATING s)."""
        copy, tracker = self.copies.get(path.key), self.tracker
        window = path.settings.cache.stale_while_revalidate
        if (tracker is None or copy is None or copy.status != 404 or not copy.session
                or not copy.fresh_until <= now < copy.fresh_until + window
                or self.reads.pending(path.resources, now)
                or tracker.current(now, blocking=False) != copy.session):
            return None
        asked = self._revalidating.peek(path.key)
        if asked is None or now - asked >= REVALIDATING:
            self._revalidating.put(path.key, now)  # this request goes, on a thread
            return None
        return copy if self.copies.get(path.key) is copy else None

    def remember(self, environ: dict[str, Any], key: Key, resources: list[str],
                 settings: Settings) -> None:
        """Note which view a request path names (on its route), for ``answer``."""
        raw = environ.get("PATH_INFO", "")
        if raw not in self.paths and not beyond_path(environ):
            self.paths.put(raw, Path(environ["bottle.route"].rule, key, tuple(resources),
                                     settings))
