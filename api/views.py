"""The catalogue's views on their routes: a read of Redis (api/reader.py) made into the
view's response, kept as this process's copy.

``Views.handler(view)`` is the view's Bottle route, run on a thread for what a hit on
the event loop (api/hits.py) could not answer: the copy if it may be served after all,
else a read of the view's entries, answered with a strong ETag derived from its parts,
Last-Modified, Cache-Control, Age and Cache-Status (api/headers.py), and a 304 to a
matching If-None-Match / If-Modified-Since. What it served becomes the process's copy
(api/copies.py) and is shelved for the server's other processes (api/shelf.py). While
Redis cannot be reached it answers from those (api/outage.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import bottle
import redis

from api.access import LIMITED_AS
from api.bridge import beyond_path
from api.copies import Copies, Copy, Key
from api.headers import (
    cache_status,
    copy_status,
    error_response,
    error_served,
    negative_headers,
    view_headers,
)
from api.hits import Hits
from api.outage import Outage
from api.reader import Read, Reader
from api.requests_log import SERVED, VIEW
from api.responses import encode
from api.shelf import Shelf
from api.tracker import Tracker
from shared.bounded import LRU
from shared.config.settings import Settings
from shared.errors import CachedProxyError, InvalidRequest, NotFound, StoreUnavailable
from shared.policy import http
from shared.policy.serving import Served, copy_usable
from shared.store.entries import store_error
from shared.upstreams.kinds import View, parse_query
from shared.upstreams.registry import views

log = logging.getLogger(__name__)

UNREACHABLE = "cache store unavailable: Redis is unreachable"
NOT_ALLOWLISTED = ("not on the read-through allowlist: the catalogue's read-through routes "
                   "are listed in /openapi.json")
BODY_CACHE_SIZE = 1024  # encoded view bodies kept per process, by ETag
NEGATIVE_ETAG = ""  # a remembered 404's copy has no ETag (none is sent with a 404)


def _shelved_part(copy: Copy) -> tuple[str, float, float]:
    """What the shelf holds of a copy that may change while it is kept."""
    return copy.etag, copy.fresh_until, copy.checked_at


def no_route(path: str) -> str:
    """Why no route takes ``path``: under an upstream's read-through prefix (/github/...),
    it is not on the allowlist; elsewhere there is no such route."""
    head = path.split("/")[1] if path.startswith("/") else ""
    if head and any(v.allowlist and v.route.split("/")[1] == head for v in views()):
        return NOT_ALLOWLISTED
    return "no such route"


def _values(view: View, raw: dict[str, str], beyond: str) -> dict[str, Any]:
    """The view's parameters, validated. A read-through path that is not exactly an
    allowlisted one (an invalid value, percent-encoding, a query other than its declared
    parameters, each once and valid: ``beyond`` the path as it reads) is a 404, as any
    other path."""
    try:
        values = {p.name: p.parse(raw[p.name]) for p in view.params}
        if view.allowlist and beyond:
            values.update(parse_query(view.query, beyond))
        return values
    except InvalidRequest:
        if view.allowlist:
            raise NotFound(NOT_ALLOWLISTED) from None
        raise


def _identity(values: dict[str, Any]) -> str:
    """What a view's parameters add to its ETag: the value of the only one, as ever."""
    if len(values) == 1:
        return str(next(iter(values.values())))
    return "&".join(f"{name}={value}" for name, value in sorted(values.items()))


class Views:
    """The views' responses in one API process: its ``copies`` (dropped by the
    ``tracker`` of entry changes as entries change), the outage state of its Redis, and
    the ``shelf`` it shares with the server's other processes."""

    def __init__(self, reader: Reader, current: Callable[[], Settings],
                 tracker: Tracker | None = None, copies: Copies | None = None,
                 shelf: Shelf | None = None) -> None:
        self.reader = reader
        self.current = current
        self.tracker = tracker
        self.copies = copies if copies is not None else Copies()
        self.shelf = shelf or Shelf(None)
        self.outage = Outage(reader.ping, reader.clock)
        self.hits = Hits(self.copies, tracker, reader.reads, reader.clock, current)
        self.bodies: LRU[str, bytes] = LRU(BODY_CACHE_SIZE)  # a body is a function of its ETag

    def respond(self, key: Key, made: Copy, status: str, body: Callable[[], bytes],
                keep: bool = False) -> bottle.HTTPResponse:
        """The view's response on its route (a 304 when the client's copy matches);
        ``keep``: note it in this process's copies (``made`` without its body)."""
        request = bottle.request
        now = self.reader.clock()
        unchanged = http.not_modified(request.get_header("If-None-Match"),
                                      request.get_header("If-Modified-Since"), made.etag,
                                      made.modified)
        encoded = None if unchanged else body()
        if keep:
            self.keep(key, made, lambda: encoded or body())
        headers = view_headers(made, status, now, self.current().cache,
                               None if encoded is None else len(encoded))
        return bottle.HTTPResponse(encoded, 304 if encoded is None else 200, dict(headers))

    def keep(self, key: Key, made: Copy, body: Callable[[], bytes]) -> None:
        """Note a view served from Redis in this process's copies: its copy takes the new
        freshness if of the same data, else ``made`` (without its body) is stored with it.
        A copy new or newly refreshed is shelved for the server's other processes."""
        before = self.copies.get(key)
        if not self.copies.touch(key, made.etag, made.fresh_until, made.checked_at,
                                 made.session):
            self.copies.put(key, dataclasses.replace(made, body=body()))
        kept = self.copies.get(key)
        if kept is not None and (before is None or _shelved_part(before) != _shelved_part(kept)):
            self.shelf.put(key, kept)

    def from_copy(self, key: Key, copy: Copy, served: Served, details: tuple[str, ...] = ()
                  ) -> bottle.HTTPResponse:
        """The route's answer from a copy: a hit, or (``details``) a stand-in for Redis."""
        environ = bottle.request.environ
        if copy.status == 404:
            environ[SERVED] = Served.NEGATIVE
            return bottle.HTTPResponse(copy.body, 404, dict(
                negative_headers(self.current().cache, len(copy.body))))
        environ[SERVED] = served
        return self.respond(key, copy, copy_status(copy, self.reader.clock(), details),
                            lambda: copy.body)

    @staticmethod
    def refusal(view: View, raw: dict[str, str], beyond: str) -> CachedProxyError | None:
        """The error the view's route gives for these parameters and what came ``beyond``
        the path (400, or 404 for a path not on a read-through allowlist), or None when
        it takes them."""
        try:
            _values(view, raw, beyond)
        except (InvalidRequest, NotFound) as exc:
            return exc.with_traceback(None)  # no frames kept alive (a cycle through them)
        return None

    def without_store(self, key: Key, error: CachedProxyError) -> bottle.HTTPResponse:
        """Redis is unreachable: this process's copy of the view, or the one another
        process of the server shelved if more recent, if still usable."""
        copy = self.copies.get(key)
        shelved = self.shelf.get(key)
        if shelved is not None and (copy is None or shelved.checked_at > copy.checked_at):
            copy = shelved
        if copy is None or not copy_usable(copy.fresh_until, self.reader.clock(),
                                           self.current().cache.stale_if_error):
            bottle.request.environ[SERVED] = Served.ERROR
            return error_response(error)
        return self.from_copy(key, copy, Served.LOCAL, ("detail=store-unavailable",))

    def handler(self, view: View) -> Callable[..., bottle.HTTPResponse]:
        """The Bottle route of ``view``."""

        def handle(**raw: str) -> bottle.HTTPResponse:
            environ = bottle.request.environ
            environ[VIEW] = view.name
            try:
                return self._answer(view, raw, environ)
            except CachedProxyError as exc:
                environ[SERVED] = error_served(exc)
                return error_response(exc, negative_ttl=self.current().cache.negative_ttl)
            except Exception:
                log.exception("request failed", extra={"view": view.name, "params": raw})
                environ[SERVED] = Served.ERROR
                return error_response(CachedProxyError())

        return handle

    def _answer(self, view: View, raw: dict[str, str], environ: dict[str, Any]
                ) -> bottle.HTTPResponse:
        reader, tracker = self.reader, self.tracker
        values = _values(view, raw, beyond_path(environ))
        key = (view.name, _identity(values))
        settings = self.current()
        resources = view.resources(values, settings)
        self.hits.remember(environ, key, resources, settings)
        now = reader.clock()
        copy = self.hits.current_copy(key, resources, now)
        if copy is not None:
            return self.from_copy(key, copy, Served.HIT)
        if not self.outage.reachable(now):
            return self.without_store(key, StoreUnavailable(UNREACHABLE))
        # A copy made from this read is current only if none of its entries changed
        # meanwhile (as told by the notices applied after the read).
        session = tracker.current(now) if tracker is not None else 0
        notice = tracker.changes if tracker is not None else 0
        try:
            read = reader.read(resources, view.not_found, environ.get(LIMITED_AS))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.outage.unreachable(exc)
            return self.without_store(key, StoreUnavailable(UNREACHABLE))
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        self.outage.succeeded()
        environ[SERVED] = read.served
        if tracker is not None and (tracker.current(reader.clock()) != session
                                    or tracker.changed_since(resources, notice)):
            session = 0
        return self._made(view, values, key, tuple(resources), read, session)

    def _made(self, view: View, values: dict[str, Any], key: Key, resources: tuple[str, ...],
              read: Read, session: int) -> bottle.HTTPResponse:
        """The answer made from a read of Redis, kept as the process's copy."""
        entries = read.entries
        fresh_until = min(e.fresh_until for e in entries)
        checked_at = min(e.checked_at for e in entries)
        if read.served is Served.NEGATIVE:
            error = NotFound(view.not_found)
            error.cache_hit = True
            self.keep(key, Copy(b"", NEGATIVE_ETAG, 0.0, fresh_until, checked_at, resources,
                                session, 404), lambda: encode(error.body()))
            return error_response(error, self.current().cache.negative_ttl)
        etag = http.strong_etag(view.name, key[1], *(e.digest for e in entries))

        def body() -> bytes:
            encoded = self.bodies.get(etag)
            if encoded is None:  # the ETag names the parameters and the parts' data
                encoded = self.bodies.put(etag, encode(
                    view.build(values, [e.data for e in entries])))
            return encoded

        made = Copy(b"", etag, max(e.fetched_at for e in entries), fresh_until, checked_at,
                    resources, session)
        now = self.reader.clock()
        return self.respond(key, made, cache_status(read.served, read.fresh_for(now),
                                                    read.upstream_status), body, keep=True)
