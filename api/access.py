"""WSGI middleware: API keys, per-client rate limits, CORS and the headers every
response carries. The decisions are in shared/policy/access.py; this is the I/O.

- ``/healthz``, ``/readyz`` and ``/openapi.json`` are open; ``/admin/`` has its own token
  (api/admin.py); ``/metrics`` takes ``access.metrics_keys`` when set, else the API keys.
- Everything else needs an API key when keys are required (by default whenever any are
  configured): 401 with ``WWW-Authenticate`` otherwise. The key's name (never the key)
  goes to the request log as ``client``.
- With ``access.rate_limit`` set, views are counted per key name (or client address)
  (api/limits.py). A refusal known to stand (the window is full until its oldest
  request leaves) is answered without Redis, on the event loop (``answer``); counting
  needs a thread.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis

from api.bridge import Answer, Answering
from api.limits import Limiter, parse_limits, too_many, unavailable
from api.responses import JSON_TYPE, encode
from shared.config.settings import AccessSettings
from shared.errors import CachedProxyError, Unauthorized
from shared.policy import access

log = logging.getLogger(__name__)

CLIENT = "cachedproxy.client"  # environ key: the name of the request's API key
LIMITED_AS = "cachedproxy.limited_as"  # environ key: who the rate limits count ("key:...")
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json"}
ALWAYS = [("X-Content-Type-Options", "nosniff")]
CORS_EXPOSED = "ETag, Last-Modified, Age, Cache-Status, RateLimit, RateLimit-Policy, " \
               "Retry-After, X-Request-ID"


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
def _networks(raw: str) -> tuple[access.Network, ...]:
    return access.parse_networks(raw)


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
        limits = parse_limits(settings.rate_limit)
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
                unavailable(exc)
                return None
            if windows is None:
                return None
        error = too_many("rate limit exceeded", windows)
        return error, list(error.headers.items())


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
