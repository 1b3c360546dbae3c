"""What a view's answer says about the cache, in one place: its validators and
freshness (ETag, Last-Modified, Cache-Control, Age), how it was served (RFC 9211
Cache-Status), and the JSON errors' headers. The route (api/views.py) and the hit from a
copy send the same headers because both take them from here.
"""

from __future__ import annotations

import functools
import math

import bottle

from api.copies import Copy
from api.responses import JSON_TYPE, json_response
from shared.config.settings import CacheSettings
from shared.errors import CachedProxyError
from shared.policy import http
from shared.policy.serving import Served

CACHE = "cachedproxy"  # our name in Cache-Status
NEGATIVE_HIT = http.cache_status(CACHE, ["hit"])

Headers = list[tuple[str, str]]

_http_date = functools.lru_cache(maxsize=4096)(http.http_date)  # one per copy's data


def view_headers(copy: Copy, status: str, now: float, cache: CacheSettings,
                 length: int | None) -> Headers:
    """A view's response headers: a 200 with a body of ``length`` bytes, or (``length``
    None) a 304, which carries no Last-Modified and no body headers (RFC 9110 section
    15.4.5, as Bottle sends one)."""
    headers = [("ETag", copy.etag)]
    if length is not None:
        headers.append(("Last-Modified", _http_date(copy.modified)))
    headers += [
        ("Cache-Control", http.cache_control(
            copy.fresh_until - now, cache.stale_while_revalidate, cache.stale_if_error)),
        ("Age", str(int(max(now - copy.checked_at, 0.0)))),
        ("Cache-Status", status),
    ]
    if length is not None:
        headers += [("Content-Type", JSON_TYPE), ("Content-Length", str(length))]
    return headers


def negative_headers(cache: CacheSettings, length: int) -> Headers:
    """A remembered 404's headers, as ``error_response`` gives them."""
    return [("Cache-Control", f"max-age={int(cache.negative_ttl)}"),
            ("Cache-Status", NEGATIVE_HIT), ("Content-Type", JSON_TYPE),
            ("Content-Length", str(length))]


def copy_status(copy: Copy, now: float, details: tuple[str, ...] = ()) -> str:
    """Cache-Status of an answer from a process's copy: a hit."""
    return http.cache_status(CACHE, ["hit", f"ttl={int(copy.fresh_until - now)}", *details])


def cache_status(served: Served, fresh_for: float, upstream_status: int | None) -> str:
    """RFC 9211 for a view read from Redis: hit; a miss forwarded upstream (collapsed
    onto another request's fetch when it led none); or stale data served while
    revalidating or because upstream failed (``upstream_status``: what it answered)."""
    ttl = f"ttl={int(fresh_for)}"
    if served is Served.HIT:
        return http.cache_status(CACHE, ["hit", ttl])
    if served in (Served.MISS, Served.COLLAPSED):
        collapsed = ["collapsed"] if served is Served.COLLAPSED else []
        return http.cache_status(CACHE, ["fwd=miss", "stored", *collapsed, ttl])
    params = ["fwd=stale"]
    if served is Served.STALE_IF_ERROR and upstream_status is not None:
        params.append(f"fwd-status={upstream_status}")
    detail = "stale-if-error" if served is Served.STALE_IF_ERROR else "stale-while-revalidate"
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
