"""The exception tree, drawn once, and the one mapping from error to HTTP status and body.

    CachedProxyError            500  internal
    ├── InvalidRequest          400  invalid_request
    ├── Unauthorized            401  unauthorized      an API key, a metrics key or the
    │                                                  admin token missing or wrong
    ├── NotFound                404  not_found
    ├── TooManyRequests         429  rate_limited      a client over its rate or miss limit
    ├── UpstreamError           502  upstream_error    upstream 5xx/4xx, refused, bad body
    │   ├── UpstreamTimeout     504  upstream_timeout  upstream did not answer in time
    │   └── RateLimited         502  upstream_error    upstream rate limits us
    │                                                  (worker/upstream.py)
    ├── FetchTimeout            504  fetch_timeout     a miss waited longer than allowed
    ├── FetchFailed             503  fetch_failed      the fetch's worker process died
    ├── BudgetSpent             503  budget_spent      misses spent their share of the
    │                                                  upstream's request budget
    ├── StoreUnavailable        503  store_unavailable Redis or the broker is unreachable,
    │                                                  or read-only (a failover under way)
    └── StoreFull               503  store_full        Redis refused a write: out of memory

An error may say when to ask again (``retry_after``, seconds): sent as ``Retry-After``.
"""

from __future__ import annotations

from typing import Any


class CachedProxyError(Exception):
    """The root of the tree: an HTTP status, a code and a message; ``body`` is the
    JSON error clients get."""

    status = 500
    code = "internal"

    def __init__(self, message: str = "internal error", upstream_status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status  # what upstream answered, when it answered
        self.retry_after = retry_after  # seconds until asking again may succeed
        self.cache_hit = False  # answered from a stored entry (a cached 404)
        self.headers: dict[str, str] = {}  # sent with the error (Retry-After, RateLimit)

    def body(self) -> dict[str, Any]:
        """The JSON error: ``{"error": {"status", "code", "message"}}``."""
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class InvalidRequest(CachedProxyError):
    """400: a malformed id or parameter."""

    status = 400
    code = "invalid_request"


class NotFound(CachedProxyError):
    """404: upstream does not have it (remembered), or no such path."""

    status = 404
    code = "not_found"


class UpstreamError(CachedProxyError):
    """502: upstream failed (unreachable, 5xx, a refusal, a body that does not hold)."""

    status = 502
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """504: upstream did not answer in time."""

    status = 504
    code = "upstream_timeout"


class FetchTimeout(CachedProxyError):
    """504: the fetch did not finish within the request's wait."""

    status = 504
    code = "fetch_timeout"


class FetchFailed(CachedProxyError):
    """503: the fetch was lost (its worker died or it was interrupted)."""

    status = 503
    code = "fetch_failed"


class BudgetSpent(CachedProxyError):
    """A miss over its share of the upstream's request budget (``upstream.miss_share``)."""

    status = 503
    code = "budget_spent"


class StoreUnavailable(CachedProxyError):
    """503: Redis cannot be reached."""

    status = 503
    code = "store_unavailable"


class StoreFull(CachedProxyError):
    """503 (store_full): Redis is out of memory and refuses writes."""

    status = 503
    code = "store_full"


class Unauthorized(CachedProxyError):
    """401: an API key (or the admin token) is required."""

    status = 401
    code = "unauthorized"


class TooManyRequests(CachedProxyError):
    """A client over its rate limit (api/limits.py)."""

    status = 429
    code = "rate_limited"


_BY_CODE: dict[str, type[CachedProxyError]] = {
    cls.code: cls
    for cls in (CachedProxyError, InvalidRequest, Unauthorized, NotFound, UpstreamError,
                UpstreamTimeout, FetchTimeout, FetchFailed, StoreUnavailable, StoreFull,
                TooManyRequests, BudgetSpent)
}


def from_code(code: str, message: str, upstream_status: int | None = None,
              retry_after: float | None = None) -> CachedProxyError:
    """Rebuild an error that crossed a process boundary as (code, message)."""
    return _BY_CODE.get(code, CachedProxyError)(message, upstream_status, retry_after)
