"""The catalogue's views as HTTP responses: read from Redis, or from this process's copy.

``Views.handler(view)`` is a view's Bottle route: it reads the view's entries
(api/reader.py), answers with a strong ETag derived from its parts, Last-Modified,
Cache-Control (max-age, stale-while-revalidate, stale-if-error), Age and an RFC 9211
Cache-Status, a 304 to a matching If-None-Match / If-Modified-Since, and notes what it
served in the process's copies (api/local.py). ``Views.hit`` answers a request for a
path served before straight from its copy, before any routing or Bottle response, when
the copy may be served without Redis; the response is the one the route would give.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import bottle
import redis

from api.access import LIMITED_AS
from api.bridge import ON_LOOP
from api.local import Copies, Copy, Key, Outage, Tracker
from api.reader import Read, Reader
from api.requests_log import ROUTE, SERVED
from api.responses import JSON_TYPE, encode, json_response
from api.shelf import Shelf
from shared.config.settings import Settings
from shared.errors import CachedProxyError, InvalidRequest, NotFound, StoreUnavailable
from shared.policy import http
from shared.policy.serving import Served, copy_usable
from shared.store.entries import store_error
from shared.upstreams.kinds import View

log = logging.getLogger(__name__)

CACHE = "cachedproxy"
UNREACHABLE = "cache store unavailable: Redis is unreachable"
BODY_CACHE_SIZE = 1024  # encoded view bodies kept per process, by ETag
PATHS = 8192  # request paths whose view this process remembers, for hits from copies
NEGATIVE_ETAG = ""  # a remembered 404's copy has no ETag (none is sent with a 404)
NEGATIVE_HIT = http.cache_status(CACHE, ["hit"])
REVALIDATING = 1.0  # seconds between requests sent to revalidate a stale remembered 404

StartResponse = Callable[..., Any]


class BodyCache:
    """Encoded view bodies by ETag, the least recently used dropped past ``size``: a
    body is a pure function of what its ETag is made of, so a hit builds it once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> bytes:
        with self._lock:
            self._bodies[etag] = body
            if len(self._bodies) > self.size:
                self._bodies.popitem(last=False)
        return body


class Path(NamedTuple):
    """What a request path served before names: its route's rule (for the metrics), the
    view and parameters, the resources, and the settings they were worked out under."""

    rule: str
    key: Key
    resources: tuple[str, ...]
    settings: Settings


_http_date = functools.lru_cache(maxsize=4096)(http.http_date)  # one per copy's data


def cache_status(read: Read, now: float) -> str:
    """RFC 9211: hit; a miss forwarded upstream (collapsed onto another request's fetch
    when it led none); or stale data served while revalidating or because upstream failed."""
    ttl = f"ttl={int(read.fresh_for(now))}"
    if read.served is Served.HIT:
        return http.cache_status(CACHE, ["hit", ttl])
    if read.served in (Served.MISS, Served.COLLAPSED):
        collapsed = ["collapsed"] if read.served is Served.COLLAPSED else []
        return http.cache_status(CACHE, ["fwd=miss", "stored", *collapsed, ttl])
    params = ["fwd=stale"]
    if read.served is Served.STALE_IF_ERROR and read.upstream_status is not None:
        params.append(f"fwd-status={read.upstream_status}")
    detail = "stale-if-error" if read.served is Served.STALE_IF_ERROR else "stale-while-revalidate"
    return http.cache_status(CACHE, [*params, ttl, f"detail={detail}"])


def error_served(error: CachedProxyError) -> Served | None:
    """How an error came about, for the metrics and the log; None: it never reached the
    cache (a bad id)."""
    if error.cache_hit:
        return Served.NEGATIVE
    if error.status >= 500:
        return Served.ERROR
    return Served.MISS if error.upstream_status is not None else None


def error_response(error: CachedProxyError, negative_ttl: float = 0) -> bottle.HTTPResponse:
    """A JSON error; errors that went through the cache say how in Cache-Status."""
    headers: dict[str, str] = {}
    if error.status == 404 and (error.cache_hit or error.upstream_status == 404):
        headers["Cache-Control"] = f"max-age={int(negative_ttl)}"  # remembered that long
    if error.cache_hit:
        headers["Cache-Status"] = NEGATIVE_HIT
    elif error.upstream_status is not None or error.status in (502, 503, 504):
        params = ["fwd=miss"]
        if error.upstream_status is not None:
            params.append(f"fwd-status={error.upstream_status}")
        if error.status == 404:
            params.append("stored")
        headers["Cache-Status"] = http.cache_status(CACHE, params)
    if error.status >= 500:
        headers["Cache-Control"] = "no-store"
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return json_response(error.status, error.body(), {**headers, **error.headers})


def _shelved_part(copy: Copy) -> tuple[str, float, float]:
    """What the shelf holds of a copy that may change while it is kept."""
    return copy.etag, copy.fresh_until, copy.checked_at


def _values(view: View, raw: dict[str, str], query: str) -> dict[str, Any]:
    """The view's parameters, validated. A read-through path that is not exactly an
    allowlisted one (an invalid value, any query string) is a 404, as any other path."""
    try:
        if view.allowlist and query:
            raise InvalidRequest("a read-through path takes no query")
        return {p.name: p.parse(raw[p.name]) for p in view.params}
    except InvalidRequest:
        if view.allowlist:
            raise NotFound("no such path is allowlisted") from None
        raise


def _identity(values: dict[str, Any]) -> str:
    """What a view's parameters add to its ETag: the value of the only one, as ever."""
    if len(values) == 1:
        return str(next(iter(values.values())))
    return "&".join(f"{name}={value}" for name, value in sorted(values.items()))


class Views:
    """The views' responses in one API process: its copies, the outage state of its
    Redis and, with a ``tracker`` of entry changes, hits from the copies without Redis."""

    def __init__(self, reader: Reader, current: Callable[[], Settings],
                 tracker: Tracker | None = None, shelf: Shelf | None = None) -> None:
        self.reader = reader
        self.current = current
        self.tracker = tracker
        self.shelf = shelf or Shelf(None)
        self.bodies = BodyCache(BODY_CACHE_SIZE)
        self.copies, self.outage = Copies(), Outage()
        self.paths: OrderedDict[str, Path] = OrderedDict()
        self._revalidating: dict[Key, float] = {}  # stale remembered 404s asked again
        self._paths_lock = threading.Lock()
        if tracker is not None:
            tracker.on_change = self.copies.drop

    def headers(self, copy: Copy, status: str, now: float) -> list[tuple[str, str]]:
        """A view's response headers, a 304's included (RFC 9110 section 15.4.5)."""
        cache = self.current().cache
        return [
            ("ETag", copy.etag),
            ("Last-Modified", _http_date(copy.modified)),
            ("Cache-Control", http.cache_control(
                copy.fresh_until - now, cache.stale_while_revalidate, cache.stale_if_error)),
            ("Age", str(int(max(now - copy.checked_at, 0.0)))),
            ("Cache-Status", status),
        ]

    def respond(self, key: Key, made: Copy, status: str, body: Callable[[], bytes],
                keep: bool = False) -> bottle.HTTPResponse:
        """The view's response (a 304 when the client's copy matches); ``keep``: note it
        in this process's copies (``made`` without its body)."""
        request = bottle.request
        headers = dict(self.headers(made, status, self.reader.clock()))
        unchanged = http.not_modified(request.get_header("If-None-Match"),
                                      request.get_header("If-Modified-Since"), made.etag,
                                      made.modified)
        encoded = None if unchanged else body()
        if keep:
            self.keep(key, made, lambda: encoded or body())
        if encoded is None:
            return bottle.HTTPResponse(None, 304, headers)
        return bottle.HTTPResponse(encoded, 200, {**headers, "Content-Type": JSON_TYPE})

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

    def negative_headers(self) -> list[tuple[str, str]]:
        """A remembered 404's headers, as ``error_response`` gives them."""
        return [("Cache-Control", f"max-age={int(self.current().cache.negative_ttl)}"),
                ("Cache-Status", NEGATIVE_HIT), ("Content-Type", JSON_TYPE)]

    def from_copy(self, key: Key, copy: Copy, served: Served, details: tuple[str, ...] = ()
                  ) -> bottle.HTTPResponse:
        if copy.status == 404:
            bottle.request.environ[SERVED] = Served.NEGATIVE
            return bottle.HTTPResponse(copy.body, 404, dict(self.negative_headers()))
        bottle.request.environ[SERVED] = served
        return self.respond(key, copy, self.copy_status(copy, details), lambda: copy.body)

    def copy_status(self, copy: Copy, details: tuple[str, ...] = ()) -> str:
        ttl = int(copy.fresh_until - self.reader.clock())
        return http.cache_status(CACHE, ["hit", f"ttl={ttl}", *details])

    def current_copy(self, key: Key, resources: Iterable[str], now: float,
                     blocking: bool = True) -> Copy | None:
        """This process's copy of the view if it may be served as a hit without Redis:
        fresh, made in the current tracking session, nothing pending against it, and no
        read of its resources due to be recorded. Not ``blocking``: None as well where
        telling would wait on Redis."""
        copy = self.copies.get(key)
        tracker = self.tracker
        if (tracker is None or copy is None or not copy.session or now >= copy.fresh_until
                or self.reader.reads.pending(resources, now)):
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
        window = self.current().cache.stale_while_revalidate
        if (tracker is None or copy is None or copy.status != 404 or not copy.session
                or not copy.fresh_until <= now < copy.fresh_until + window
                or self.reader.reads.pending(path.resources, now)
                or tracker.current(now, blocking=False) != copy.session):
            return None
        asked = self._revalidating.get(path.key)
        if asked is None or now - asked >= REVALIDATING:
            if len(self._revalidating) >= PATHS:
                self._revalidating.clear()
            self._revalidating[path.key] = now  # this request goes, on a thread
            return None
        return copy if self.copies.get(path.key) is copy else None

    def hit(self, environ: dict[str, Any], start_response: StartResponse
            ) -> Iterable[bytes] | None:
        """A request for a path served before, answered from its current copy as the route
        would answer it; None: it goes the route's way."""
        method = environ.get("REQUEST_METHOD")
        path = self.paths.get(environ.get("PATH_INFO", ""))
        if (path is None or method not in ("GET", "HEAD") or environ.get("QUERY_STRING")
                or path.settings is not self.current()):
            return None
        now = self.reader.clock()
        copy = self.current_copy(path.key, path.resources, now, ON_LOOP not in environ)
        if copy is None:
            stale = self.revalidating_404(path, now) if ON_LOOP in environ else None
            if stale is None:
                return None
            environ[ROUTE] = path.rule  # as the route answers a stale remembered 404
            start_response("404 Not Found", [("Content-Type", JSON_TYPE),
                                             ("Content-Length", str(len(stale.body)))])
            return [] if method == "HEAD" else [stale.body]
        environ[ROUTE] = path.rule
        if copy.status == 404:
            environ[SERVED] = Served.NEGATIVE
            start_response("404 Not Found", [*self.negative_headers(),
                                             ("Content-Length", str(len(copy.body)))])
            return [] if method == "HEAD" else [copy.body]
        environ[SERVED] = Served.HIT
        headers = self.headers(copy, self.copy_status(copy), now)
        if http.not_modified(environ.get("HTTP_IF_NONE_MATCH"),
                             environ.get("HTTP_IF_MODIFIED_SINCE"), copy.etag, copy.modified):
            del headers[1]  # no Last-Modified on a 304, as Bottle sends it
            start_response("304 Not Modified", headers)
            return []
        headers += [("Content-Type", JSON_TYPE), ("Content-Length", str(len(copy.body)))]
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [copy.body]

    @staticmethod
    def refusal(view: View, raw: dict[str, str], query: str) -> CachedProxyError | None:
        """The error the view's route gives for these parameters (400, or 404 for a path
        not on a read-through allowlist), or None when it takes them."""
        try:
            _values(view, raw, query)
        except (InvalidRequest, NotFound) as exc:
            return exc.with_traceback(None)  # no frames kept alive (a cycle through them)
        return None

    def remember(self, environ: dict[str, Any], key: Key, resources: list[str],
                 settings: Settings) -> None:
        """Note which view a request path names, for ``hit``."""
        raw = environ.get("PATH_INFO", "")
        if raw in self.paths or environ.get("QUERY_STRING"):
            return
        with self._paths_lock:
            self.paths[raw] = Path(environ["bottle.route"].rule, key, tuple(resources),
                                   settings)
            while len(self.paths) > PATHS:
                self.paths.popitem(last=False)

    def reachable(self, now: float) -> bool:
        """Whether this request may use Redis. While Redis is thought unreachable one
        request per probe interval asks it with a PING: the outage ends as soon as
        Redis answers, not once that request's own read (a miss waits on upstream) is
        done, and the requests behind it read Redis again."""
        if not self.outage.should_try(now):
            return False
        since = self.outage.since
        if since is None:
            return True
        try:
            self.reader.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.unreachable(exc)
            return False
        log.info("Redis reachable again",
                 extra={"unreachable_s": round(self.reader.clock() - since, 1)})
        self.outage.succeeded()
        return True

    def unreachable(self, exc: redis.RedisError) -> None:
        """A Redis command failed for want of Redis: serve copies meanwhile."""
        if self.outage.since is None:
            log.warning("Redis unreachable: serving this process's copies",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
        self.outage.failed(self.reader.clock())

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
        reader, tracker = self.reader, self.tracker

        def handle(**raw: str) -> bottle.HTTPResponse:
            environ = bottle.request.environ
            try:
                values = _values(view, raw, environ.get("QUERY_STRING", ""))
                key = (view.name, _identity(values))
                settings = self.current()
                resources = view.resources(values, settings)
                self.remember(environ, key, resources, settings)
                now = reader.clock()
                copy = self.current_copy(key, resources, now)
                if copy is not None:
                    return self.from_copy(key, copy, Served.HIT)
                if not self.reachable(now):
                    return self.without_store(key, StoreUnavailable(UNREACHABLE))
                # A copy made from this read is current only if none of its entries
                # changed meanwhile (as told by the notices applied after the read).
                session = tracker.current(now) if tracker is not None else 0
                notice = tracker.changes if tracker is not None else 0
                try:
                    read = reader.read(resources, view.not_found, environ.get(LIMITED_AS))
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    self.unreachable(exc)
                    return self.without_store(key, StoreUnavailable(UNREACHABLE))
                except redis.RedisError as exc:
                    raise store_error(exc) from exc
                self.outage.succeeded()
            except CachedProxyError as exc:
                environ[SERVED] = error_served(exc)
                return error_response(exc, negative_ttl=self.current().cache.negative_ttl)
            except Exception:
                log.exception("request failed", extra={"view": view.name, "params": raw})
                environ[SERVED] = Served.ERROR
                return error_response(CachedProxyError())
            environ[SERVED] = read.served
            if tracker is not None and (tracker.current(reader.clock()) != session
                                        or tracker.changed_since(resources, notice)):
                session = 0
            fresh_until = min(e.fresh_until for e in read.entries)
            checked_at = min(e.checked_at for e in read.entries)
            if read.served is Served.NEGATIVE:
                error = NotFound(view.not_found)
                error.cache_hit = True
                self.keep(key, Copy(b"", NEGATIVE_ETAG, 0.0, fresh_until, checked_at,
                                    tuple(resources), session, 404),
                          lambda: encode(error.body()))
                return error_response(error, self.current().cache.negative_ttl)
            etag = http.strong_etag(view.name, key[1], *(e.digest for e in read.entries))

            def body() -> bytes:
                encoded = self.bodies.get(etag)
                if encoded is None:  # the ETag names the parameters and the parts' data
                    encoded = self.bodies.put(etag, encode(
                        view.build(values, [e.data for e in read.entries])))
                return encoded

            made = Copy(b"", etag, max(e.fetched_at for e in read.entries), fresh_until,
                        checked_at, tuple(resources), session)
            return self.respond(key, made, cache_status(read, reader.clock()), body,
                                keep=True)

        return handle
