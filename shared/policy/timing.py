"""When to refresh: the pure timing rules of refresh-ahead, of backing off a failing
upstream and of catching up after it recovers, and the API's read throttle."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from shared.errors import CachedProxyError, UpstreamError

JITTER = 0.1  # a refresh comes up to this share of its period early, at random


def next_refresh(checked_at: float, ttl: float, ratio: float,
                 rng: Callable[[], float] = random.random) -> float:
    """``ttl × ratio`` after the last validation, up to 10 % earlier at random.

    The jitter spreads resources fetched together over time, so they do not refresh in
    one burst forever; it only ever moves a refresh earlier, never past ``ttl × ratio``.
    """
    return checked_at + ttl * ratio * (1 - JITTER * rng())


def mean_period(ttl: float, ratio: float) -> float:
    """The mean time between refreshes of a resource with this TTL (``next_refresh``)."""
    return ttl * ratio * (1 - JITTER / 2)


def recently_checked(checked_at: float, now: float, ttl: float, ratio: float) -> bool:
    """True when a refresh would repeat one done less than half a period ago."""
    return now - checked_at < ttl * ratio / 2


def retry_delay(failures: int, base: float, cap: float, retry_after: float | None = None
                ) -> float:
    """Exponential backoff after ``failures`` failed refreshes in a row, capped; a
    429's Retry-After is honoured when it asks for longer."""
    delay = min(base * 2 ** max(failures - 1, 0), cap)
    return max(delay, retry_after or 0.0)


def read_period(ttl: float, ratio: float, idle_timeout: float) -> float:
    """How often a process records reads of a resource it serves: once per refresh
    period, and at least four times per idle timeout, so the recorded last read lags
    the real one by a small part of the idle timeout."""
    return min(ttl * ratio, idle_timeout / 4)


class ReadThrottle:
    """Lets a process record a read of each resource at most once per its read period
    (``read_period``: each view's own), and counts the reads in between, so a record
    stands for all of them (read rates: shared/policy/freshness.py). It remembers at
    most ``size`` resources: past that, those whose next record is due anyway are
    forgotten (the same as never noted), and if that is not enough, all: a read
    recorded again costs only a little, a few reads uncounted skew no rate."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._next: dict[str, float] = {}
        self._reads: dict[str, int] = {}

    def pending(self, resources: Sequence[str], now: float) -> bool:
        """Whether a read of any of these is due to be recorded; if none is, the read
        is counted toward their next records (the caller serves it without one). On
        the hit path: plain loops, no generator."""
        next_at, reads = self._next, self._reads
        for resource in resources:
            if next_at.get(resource, 0.0) <= now:
                return True
        for resource in resources:
            reads[resource] = reads.get(resource, 0) + 1
        return False

    def due(self, resources: Iterable[str], now: float, period: float) -> list[str]:
        """Count a read of these, and return those whose read is due to be recorded
        now; each is next due in ``period`` seconds."""
        resources = tuple(resources)
        due = [r for r in resources if self._next.get(r, 0.0) <= now]
        if due and len(self._next) >= self.size:
            self._next = {r: at for r, at in self._next.items() if at > now}
            if len(self._next) >= self.size:
                self._next = {}
            self._reads = {r: n for r, n in self._reads.items() if r in self._next}
        for resource in resources:
            self._reads[resource] = self._reads.get(resource, 0) + 1
        for resource in due:
            self._next[resource] = now + period
        return due

    def take(self, resources: Iterable[str]) -> list[int]:
        """The reads counted of each resource since its last record (at least the one
        being recorded); they start again from nothing."""
        return [max(self._reads.pop(r, 0), 1) for r in resources]


def upstream_failing(error: CachedProxyError) -> bool:
    """Whether an error says the upstream as a whole is failing, not one resource:
    unreachable, timing out, 5xx, rate limiting (429) or refusing our credentials
    (401/403). A malformed body or another 4xx concerns the one resource."""
    if not isinstance(error, UpstreamError):
        return False
    status = error.upstream_status
    return status is None or status >= 500 or status in (401, 403, 429)


def handed_back_at(count: int, queued: int, per_second: float, now: float,
                   after: float = 0.0, soonest: float = 1.0) -> list[float]:
    """When each of ``count`` refreshes that an upstream had no room for comes due again:
    in turn behind the ``queued`` refreshes it has and behind those handed back before
    (the last due at ``after``), at the rate it finishes them (``per_second``; at least
    one a second is assumed), and ``soonest`` seconds from ``now`` at the earliest. A
    saturated upstream is then claimed about as fast as it is refreshed, each of its
    resources in turn, and its overdue resources never fill the ticks that other
    upstreams' refreshes need."""
    rate = max(per_second, 1.0)
    first = max(now + max(soonest, (queued + 1) / rate), after + 1 / rate)
    return [first + i / rate for i in range(count)]


def recovery_plan(resources: Sequence[str], now: float, per_second: float,
                  least: float = 1.0) -> list[tuple[str, float]]:
    """When to refresh the resources held back while their upstream failed, now that it
    answers again: spread evenly over ``least`` seconds, or longer so that no more than
    ``per_second`` are due in any second."""
    if not resources:
        return []
    spread = max(least, len(resources) / per_second)
    step = spread / len(resources)
    return [(resource, now + i * step) for i, resource in enumerate(sorted(resources))]
