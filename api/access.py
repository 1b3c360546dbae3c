"""WSGI middleware: API keys, per-client rate limits, CORS and the headers every
response carries. The decisions are in shared/policy/access.py; this is the I/O.

- ``/healthz``, ``/readyz`` and ``/openapi.json`` are open; ``/admin/`` has its own token
  (api/admin.py); ``/metrics`` takes ``access.metrics_keys`` when set, else the API keys.
- Everything else needs an API key when keys are required: 401 with ``WWW-Authenticate``
  otherwise. The key's name (never the key) goes to the request log as ``client``.
- With ``access.rate_limit`` set, views are counted per key name (or client address)
  in Redis with the ``limits`` library's moving window, shared by every API process;
  over the limit: 429 with ``Retry-After``, ``RateLimit`` and ``RateLimit-Policy``.
  When Redis cannot answer the limiter the request goes through (fail open), counted in
  ``cachedproxy_rate_limit_unavailable_total``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from api.bridge import ON_LOOP, NeedsThread
from api.responses import JSON_TYPE, encode
from shared.config.settings import AccessSettings
from shared.errors import CachedProxyError, TooManyRequests, Unauthorized
from shared.policy import access
from shared.policy.access import Limit, Window
from shared.store.keys import Keys

log = logging.getLogger(__name__)

CLIENT = "cachedproxy.client"  # environ key: the name of the request's API key
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json"}
ALWAYS = [("X-Content-Type-Options", "nosniff")]
CORS_EXPOSED = "ETag, Last-Modified, Age, Cache-Status, RateLimit, RateLimit-Policy, " \
               "Retry-After, X-Request-ID"
UNAVAILABLE = Counter("cachedproxy_rate_limit_unavailable",
                      "Requests let through because Redis could not answer the rate limiter")

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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
    """The moving-window counters of every API process, in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        storage = RedisStorage("redis://", connection_pool=client.connection_pool,
                               key_prefix=keys.rate_limits())
        self.strategy = MovingWindowRateLimiter(storage)

    def hit(self, client: str, limits: Sequence[tuple[RateLimitItem, Limit]], now: float
            ) -> list[Window] | None:
        """Count a request; None when it may go, else every limit's window."""
        if all(self.strategy.hit(item, client) for item, _ in limits):
            return None
        windows = []
        for item, limit in limits:
            stats = self.strategy.get_window_stats(item, client)
            windows.append(Window(limit, stats.remaining, stats.reset_time - now))
        return windows


class Access:
    def __init__(self, app: App, current: Callable[[], AccessSettings], host: str,
                 limiter: Limiter | None, clock: Callable[[], float]) -> None:
        self.app = app
        self.current = current  # the access settings in force now (live)
        self.host = host  # where the API listens: keys are required off loopback
        self.limiter = limiter
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
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
        refused = self._refused(environ, settings)
        if refused is not None:
            error, headers = refused
            return _answer(start_response, f"{error.status} {_reason(error.status)}",
                           encode(error.body()), extra + headers + [
                               ("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")])

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, headers + extra, exc_info)

        return self.app(environ, start)

    def _refused(self, environ: dict[str, Any], settings: AccessSettings
                 ) -> tuple[CachedProxyError, list[tuple[str, str]]] | None:
        path = environ.get("PATH_INFO", "")
        if path in OPEN_PATHS or path.startswith("/admin/"):
            return None
        authorization = environ.get("HTTP_AUTHORIZATION")
        name = None
        if path == "/metrics" and settings.metrics_keys:
            name = access.identify(authorization, _keys(settings.metrics_keys))
            if name is None:
                return _unauthorized("a metrics key is required")
        elif access.keys_required(settings.require_keys, self.host):
            keys = _keys(settings.keys)
            name = access.identify(authorization, keys)
            if name is None:
                return _unauthorized("an API key is required" if keys
                                     else "an API key is required; none is configured")
        if name is not None:
            environ[CLIENT] = name
        limits = _limits(settings.rate_limit)
        if not limits or path == "/metrics" or self.limiter is None:
            return None
        if ON_LOOP in environ:  # counting the request is a Redis round trip
            raise NeedsThread
        client = f"key:{name}" if name is not None else "addr:" + access.client_address(
            environ.get("REMOTE_ADDR", ""), environ.get("HTTP_X_FORWARDED_FOR"),
            _networks(settings.trusted_proxies))
        try:
            windows = self.limiter.hit(client, limits, self.clock())
        except redis.RedisError as exc:
            UNAVAILABLE.inc()
            log.warning("rate limiter unavailable; request let through",
                        extra={"error": type(exc).__name__})
            return None
        if windows is None:
            return None
        headers = access.limited_headers(windows)
        return TooManyRequests(f"rate limit exceeded; retry in {headers['Retry-After']} s"), list(
            headers.items())


def _unauthorized(message: str) -> tuple[CachedProxyError, list[tuple[str, str]]]:
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
