"""Per-client rate limits, counted in Redis and shared by every API process: the
``limits`` library's moving window, and the refusals this process knows will stand.

``access.rate_limit`` counts every view request (``Access``, api/access.py);
``access.miss_rate_limit`` only those that would start an upstream fetch (``MissLimit``,
asked by the read path). Over a limit: 429 with ``Retry-After``, ``RateLimit`` and
``RateLimit-Policy``. When Redis cannot answer the limiter the request goes through
(fail open), counted in ``cachedproxy_rate_limit_unavailable_total``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from shared.bounded import LRU
from shared.config.settings import AccessSettings
from shared.errors import TooManyRequests
from shared.policy import access
from shared.policy.access import Limit, Window
from shared.store.keys import Keys

log = logging.getLogger(__name__)

MISSES = "misses/"  # the miss limit's counters, apart from the request limit's
REFUSALS_KEPT = 10_000  # clients whose standing refusal a process remembers
UNAVAILABLE = Counter("cachedproxy_rate_limit_unavailable",
                      "Requests let through because Redis could not answer the rate limiter")

Limits = tuple[tuple[RateLimitItem, Limit], ...]


@functools.lru_cache(maxsize=8)
def parse_limits(raw: str) -> Limits:
    """The limits of a setting in the limits notation (``100/minute;1000/hour``)."""
    return tuple((item, Limit(item.amount, item.get_expiry()))
                 for item in (parse_many(raw) if raw.strip() else []))


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
                unavailable(exc)
                return
        if windows is not None:
            raise too_many("miss rate limit exceeded: too many requests for data not cached",
                           windows)

    def _limits(self, client: str | None) -> Limits:
        if client is None or self.limiter is None:
            return ()
        return parse_limits(self.current().miss_rate_limit)


def too_many(what: str, windows: Sequence[Window]) -> TooManyRequests:
    """A 429 with the headers that say when to come back (RFC 9110, the RateLimit draft)."""
    headers = access.limited_headers(windows)
    error = TooManyRequests(f"{what}; retry in {headers['Retry-After']} s")
    error.headers = headers
    return error


def unavailable(exc: redis.RedisError) -> None:
    """Redis could not answer the limiter: the request goes through, counted and logged."""
    UNAVAILABLE.inc()
    log.warning("rate limiter unavailable; request let through",
                extra={"error": type(exc).__name__})
