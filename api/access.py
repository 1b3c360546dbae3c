"""WSGI middleware: API keys, per-client rate limits, CORS and the headers every
response carries. The decisions are in shared/policy/access.py; this is the I/O.

- ``/healthz``, ``/readyz`` and ``/openapi.json`` are open; ``/admin/`` has its own token
  (api/admin.py); ``/metrics`` takes ``access.metrics_keys`` when set, else the API keys.
- Everything else needs an API key when keys are required (by default whenever any are
  configured): 401 with ``WWW-Authenticate`` otherwise. The key's name (never the key)
  goes to the request log as ``client``.
- With ``access.rate_limit`` set, views are counted per key name (or client address)
  in Redis with the ``limits`` library's moving window, shared by every API process;
  over the limit: 429 with ``Retry-After``, ``RateLimit`` and ``RateLimit-Policy``. A
  refusal known to stand (the window is full until its oldest request leaves) is
  answered without Redis, on the event loop (``answer``); counting needs a thread.
  ``access.miss_rate_limit`` counts only the requests that would
  start an upstream fetch, the same way (``MissLimit``, asked by the read path).
  When Redis cannot answer the limiter the request goes through (fail open), counted in
  ``cachedproxy_rate_limit_unavailable_total``.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from api.bridge import Answer, Answering
from api.responses import JSON_TYPE, encode
from shared.bounded import LRU
from shared.config.settings import AccessSettings
from shared.errors import CachedProxyError, TooManyRequests, Unauthorized
from shared.policy import access
from shared.policy.access import Limit, Window
from shared.store.keys import Keys

log = logging.getLogger(__name__)

CLIENT = "cachedproxy.client"  # environ key: the name of the request's API key
LIMITED_AS = "cachedproxy.limited_as"  # environ key: who the rate limits count ("key:...")
MISSES = "misses/"  # the miss limit's counters, apart from the request limit's
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json"}
ALWAYS = [("X-Content-Type-Options", "nosniff")]
CORS_EXPOSED = "ETag, Last-Modified, Age, Cache-Status, RateLimit, RateLimit-Policy, " \
               "Retry-After, X-Request-ID"
UNAVAILABLE = Counter("cachedproxy_rate_limit_unavailable",
                      "Requests let through because Redis could not answer the rate limiter")

REFUSALS_KEPT = 10_000  # clients whose standing refusal a process remembers

StartResponse = Callable[..., Any]
Refusal = tuple[CachedProxyError, list[tuple[str, str]]]


class Unknown(enum.Enum):
    """Only Redis can tell whether the request is within its rate limit."""

    NEEDS_REDIS = "needs redis"


NEEDS_REDIS = Unknown.NEEDS_REDIS


@functools.lru_cache(maxsize=8)
def _keys(raw: str) -> dict[str, str]:
    return access.parse_keys(raw)


@functools.lru_cache(maxsize=8)
def _limits(raw: str) -> tuple[tuple[RateLimitItem, Limit], ...]:
    return tuple((item, Limit(item.amount, item.get_expiry()))
                 for item in (parse_many(raw) if raw.strip() else []))


@functools.lru_cache(maxsize=8)
def _networks(raw: str) -> tuple[access.Network, ...]:
    return access.parse_networks(raw)


class Limiter:
    """The moving-window counters of every API process, in Redis, and the refusals this
    process knows will stand: a client over a moving window's limit stays refused until
    the oldest request in it leaves (refused requests are not counted), so until then
    it is answered without asking Redis (``refused``)."""

    def __init__(self, client: redis.Redis, keys: Keys, known: int = REFUSALS_KEPT) -> None:
        storage = RedisStorage("redis://", connection_pool=client.connection_pool,
                               key_prefix=keys.rate_limits())
        self.strategy = MovingWindowRateLimiter(storage)
        self._refusals: LRU[tuple[Any, str], tuple[float, list[Window]]] = LRU(known)

    def hit(self, client: str, limits: Sequence[tuple[RateLimitItem, Limit]], now: float
            ) -> list[Window] | None:
        """Count a request; None when it may go, else every limit's window."""
        if all(self.strategy.hit(item, client) for item, _ in limits):
            return None
        return self._refusal(client, limits, now)

    def _refusal(self, client: str, limits: Sequence[tuple[RateLimitItem, Limit]], now: float
                 ) -> list[Window]:
        windows = []
        for item, limit in limits:
            stats = self.strategy.get_window_stats(item, client)
            windows.append(Window(limit, stats.remaining, stats.reset_time - now))
        exhausted = [w.reset_in for w in windows if w.remaining <= 0]
        if exhausted:
            self._refusals.put((limits, client), (now, windows))
        return windows

    def refused(self, client: str, limits: Sequence[tuple[RateLimitItem, Limit]], now: float
                ) -> list[Window] | None:
        """The windows of a refusal that still stands (as ``hit`` would give them now),
        or None when only Redis can tell."""
        known = self._refusals.peek((limits, client))
        if known is None:
            return None
        at, windows = known
        if now >= at + max(w.reset_in for w in windows if w.remaining <= 0):
            return None
        return [Window(w.limit, w.remaining, w.reset_in - (now - at)) for w in windows]


class Access:
    """The middleware: API keys, rate limits, CORS and the headers every answer carries,
    before ``app`` (the API; its ``answer`` on the event loop)."""

    def __init__(self, app: Answering, current: Callable[[], AccessSettings], host: str,
                 limiter: Limiter | None, clock: Callable[[], float]) -> None:
        self.app = app
        self.current = current  # the access settings in force now (live)
        self.host = host  # where the API listens: off loopback keys are always required
        self.limiter = limiter
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        body = self._through(environ, start_response, self.app, blocking=True)
        assert body is not None  # a WSGI app always answers
        return body

    def answer(self, environ: dict[str, Any], start_response: StartResponse
               ) -> Iterable[bytes] | None:
        """The answer without I/O, or None: counting a rate limit needs Redis, or the
        app's own ``answer`` has none."""
        return self._through(environ, start_response, self.app.answer, blocking=False)

    def _through(self, environ: dict[str, Any], start_response: StartResponse, app: Answer,
                 blocking: bool) -> Iterable[bytes] | None:
        settings = self.current()
        origin = environ.get("HTTP_ORIGIN")
        allowed = origin if origin and origin in _origins(settings.cors_origins) else None
        extra = list(ALWAYS)
        if allowed:
            extra += [("Access-Control-Allow-Origin", allowed), ("Vary", "Origin"),
                      ("Access-Control-Expose-Headers", CORS_EXPOSED)]
            if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get(
                    "HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
                return _answer(start_response, "204 No Content", b"", extra + [
                    ("Access-Control-Allow-Methods", "GET, HEAD"),
                    ("Access-Control-Allow-Headers",
                     "Authorization, If-None-Match, If-Modified-Since, X-Request-ID"),
                    ("Access-Control-Max-Age", "600")])
        refused = self._refused(environ, settings, blocking)
        if refused is NEEDS_REDIS:
            return None
        if refused is not None:
            error, headers = refused
            return _answer(start_response, f"{error.status} {_reason(error.status)}",
                           encode(error.body()), extra + headers + [
                               ("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")])

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, headers + extra, exc_info)

        return app(environ, start)

    def _refused(self, environ: dict[str, Any], settings: AccessSettings, blocking: bool
                 ) -> Refusal | Unknown | None:
        """The refusal of this request (401, 429), None if it may go on, or NEEDS_REDIS
        (not ``blocking``) when counting it is a Redis round trip."""
        path = environ.get("PATH_INFO", "")
        if path in OPEN_PATHS or path.startswith("/admin/"):
            return None
        authorization = environ.get("HTTP_AUTHORIZATION")
        name = None
        if path == "/metrics" and settings.metrics_keys:
            name = access.identify(authorization, _keys(settings.metrics_keys))
            if name is None:
                return _unauthorized("a metrics key is required")
        elif access.keys_required(settings.require_keys, self.host, bool(settings.keys.strip())):
            keys = _keys(settings.keys)
            name = access.identify(authorization, keys)
            if name is None:
                return _unauthorized("an API key is required" if keys
                                     else "an API key is required; none is configured")
        if name is not None:
            environ[CLIENT] = name
        if not (settings.rate_limit or settings.miss_rate_limit) or path == "/metrics":
            return None
        client = f"key:{name}" if name is not None else "addr:" + access.client_address(
            environ.get("REMOTE_ADDR", ""), environ.get("HTTP_X_FORWARDED_FOR"),
            _networks(settings.trusted_proxies))
        environ[LIMITED_AS] = client
        limits = _limits(settings.rate_limit)
        if not limits or self.limiter is None:
            return None
        now = self.clock()
        windows = self.limiter.refused(client, limits, now)
        if windows is None:
            if not blocking:
                return NEEDS_REDIS
            try:
                windows = self.limiter.hit(client, limits, now)
            except redis.RedisError as exc:
                _unavailable(exc)
                return None
            if windows is None:
                return None
        error = too_many("rate limit exceeded", windows)
        return error, list(error.headers.items())


class MissLimit:
    """Each client's limit on requests that start an upstream fetch
    (``access.miss_rate_limit``), counted apart from its other requests: the read path
    (api/reader.py) asks ``admit`` only for a read that would lead a flight, so a
    request that joins another's fetch is not counted. Fails open, as the rate limit."""

    def __init__(self, limiter: Limiter | None, current: Callable[[], AccessSettings],
                 clock: Callable[[], float]) -> None:
        self.limiter = limiter
        self.current = current
        self.clock = clock

    def admit(self, client: str | None, leads: Callable[[], bool]) -> None:
        """Count a request of ``client`` (as Access names it; None: no limit) if it
        ``leads`` a fetch, or raise TooManyRequests (429, with Retry-After) if it is over
        its limit: at once while a refusal stands, without asking Redis anything."""
        limits = self._limits(client)
        if not limits or client is None or self.limiter is None:
            return
        now = self.clock()
        windows = self.limiter.refused(MISSES + client, limits, now)
        if windows is None:
            try:
                if not leads():
                    return
                windows = self.limiter.hit(MISSES + client, limits, now)
            except redis.RedisError as exc:
                _unavailable(exc)
                return
        if windows is not None:
            raise too_many("miss rate limit exceeded: too many requests for data not cached",
                           windows)

    def _limits(self, client: str | None) -> tuple[tuple[RateLimitItem, Limit], ...]:
        if client is None or self.limiter is None:
            return ()
        return _limits(self.current().miss_rate_limit)


def too_many(what: str, windows: Sequence[Window]) -> TooManyRequests:
    """A 429 with the headers that say when to come back (RFC 9110, the RateLimit draft)."""
    headers = access.limited_headers(windows)
    error = TooManyRequests(f"{what}; retry in {headers['Retry-After']} s")
    error.headers = headers
    return error


def _unavailable(exc: redis.RedisError) -> None:
    UNAVAILABLE.inc()
    log.warning("rate limiter unavailable; request let through",
                extra={"error": type(exc).__name__})


def _unauthorized(message: str) -> Refusal:
    return Unauthorized(message), [("WWW-Authenticate", 'Bearer realm="cachedproxy"')]


@functools.lru_cache(maxsize=8)
def _origins(raw: str) -> frozenset[str]:
    return frozenset(o.strip() for o in raw.split(",") if o.strip())


def _reason(status: int) -> str:
    return {401: "Unauthorized", 429: "Too Many Requests"}.get(status, "Error")


def _answer(start_response: StartResponse, status: str, body: bytes,
            headers: list[tuple[str, str]]) -> list[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]
