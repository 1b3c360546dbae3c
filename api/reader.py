"""The API's read path: hits, single-flight misses, and serving stale (RFC 5861).

For each resource of a view the stored entry is:
- fresh: served (one Redis round trip; a hit from the process's own copy, api/hits.py,
  takes none);
- stale within ``stale_while_revalidate``: served at once, and one refresh is enqueued;
- older, or missing: the request joins the resource's flight (the leader enqueues the
  fetch task) and waits on the flight's result key. If the fetch fails and good data is
  stored, that data is served for up to ``stale_if_error`` past its freshness, and the
  wait for upstream is capped at ``stale_wait_timeout`` since there is data to fall back on.
  While the worker is backing off a failing resource, or probing a failing upstream
  (shared/store/breaker.py), such data is served without asking upstream at all.

Reads are recorded for the refresh schedule in the hit's own round trip, at most once
per resource per read period in each process. The API never calls upstream itself.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from shared.config.settings import Settings
from shared.errors import (
    BudgetSpent,
    CachedProxyError,
    FetchFailed,
    FetchTimeout,
    NotFound,
    TooManyRequests,
    UpstreamError,
)
from shared.policy.serving import (
    ReadAction,
    Served,
    Staleness,
    Windows,
    read_action,
    staleness,
)
from shared.policy.timing import ReadThrottle, read_period
from shared.store.breaker import UpstreamBreaker
from shared.store.entries import EntryStore
from shared.store.entry import Entry
from shared.store.flights import Flight, Flights, Outcome
from shared.store.schedule import Schedule
from shared.upstreams.registry import upstream_of

# (resource, flight token, background) -> fetch task enqueued; a background fetch is one
# no client waits for (stale-while-revalidate): the worker paces it like a refresh.
Enqueue = Callable[[str, str, bool], None]

PROBE_OVERDUE = 10.0  # seconds past due before a request probes a failing upstream
PENDING_MARGIN = 1.0  # seconds a led flight's lock outlasts its waiters before the task starts
# Failures that stored good data may stand in for (RFC 5861 section 4), and a client
# over its miss limit.
FALLBACK_ERRORS = (UpstreamError, FetchTimeout, FetchFailed, BudgetSpent, TooManyRequests)


class MissGate(Protocol):
    """A client's limit on requests that start a fetch (api/limits.py's ``MissLimit``)."""

    def admit(self, client: str | None, leads: Callable[[], bool]) -> None:
        """Count a request of ``client`` if it ``leads`` a fetch, or raise
        TooManyRequests."""


class NoMissLimit:
    """No client has a limit on misses."""

    def admit(self, client: str | None, leads: Callable[[], bool]) -> None:
        """Every request may lead a fetch."""


class Asking(enum.Enum):
    """Whether a read may ask upstream for its stale parts (``Reader._gate``)."""

    GO = "go"
    PROBE = "probe"  # as the one probe of a failing upstream: the worker must not hold it
    HOLD = "hold"  # it would only repeat a failure


@dataclass(frozen=True)
class Read:
    """What a read of a view's entries gives: the entries to serve, and how."""

    entries: list[Entry]
    # HIT, NEGATIVE (a fresh remembered 404: the view is a 404), MISS, COLLAPSED, STALE
    # or STALE_IF_ERROR
    served: Served = Served.HIT
    upstream_status: int | None = None  # what upstream answered when it failed

    def fresh_for(self, now: float) -> float:
        """Seconds until the first entry stops being fresh; negative once stale."""
        return min(e.fresh_until for e in self.entries) - now


class Reader:
    """The read path of one API process: entries from Redis, single-flight misses, stale
    data served where RFC 5861 allows (the module docstring tells the rules)."""

    def __init__(
        self,
        entries: EntryStore,
        flights: Flights,
        schedule: Schedule,
        breaker: UpstreamBreaker,
        enqueue: Enqueue,
        current: Callable[[], Settings],
        waiting_redis: redis.Redis,
        clock: Callable[[], float] = time.time,
        misses: MissGate | None = None,
    ) -> None:
        self.entries = entries
        self.flights = flights
        self.schedule = schedule
        self.breaker = breaker
        self.enqueue = enqueue
        self.current = current  # the settings in force now; they may change live
        self.waiting_redis = waiting_redis  # socket timeout above the longest wait
        self.reads = ReadThrottle()  # this process's, shared by its requests
        self.clock = clock
        self.misses = misses or NoMissLimit()

    def read(self, resources: Sequence[str], not_found: str = "not found upstream",
             client: str | None = None) -> Read:
        """Entries to serve for all resources, fetching as needed; raises on errors
        (``NotFound`` with the message ``not_found`` when a part is a stale remembered
        404). A fetch this read would start is within ``client``'s miss limit, or
        TooManyRequests (the stored data where it may stand in)."""
        now = self.clock()
        settings = self.current()
        cache, api = settings.cache, settings.api
        ttl = min(settings.ttl_for(upstream_of(r)) for r in resources)
        record = self.reads.due(resources, now, read_period(
            ttl, settings.refresh.ratio, settings.refresh.idle_timeout))
        counts = self.reads.take(record)
        entries = self.entries.read(
            resources, lambda pipe: self.schedule.record_reads(
                pipe, record, now, settings.refresh.idle_timeout, counts))
        state = staleness(entries, now, Windows(cache.stale_while_revalidate,
                                                 cache.stale_if_error))
        if state is Staleness.FRESH:
            if any(e is not None and e.status == 404 for e in entries):
                return Read(list(entries), Served.NEGATIVE)  # type: ignore[arg-type]
            return Read(_checked(entries, not_found))
        stale = [r for r, e in zip(resources, entries, strict=True) if not _fresh(e, now)]
        gate = Asking.GO if state is Staleness.UNUSABLE else self._gate(stale, now)
        action = read_action(state, gate is Asking.HOLD)
        if action is ReadAction.SERVE_STALE:
            # Upstream failed these lately and its retry is not due: asking again per
            # request would hammer a failing upstream.
            return Read(_checked(entries, not_found), Served.STALE
                        if state is Staleness.REVALIDATE else Served.STALE_IF_ERROR)
        if action is ReadAction.SERVE_AND_REFRESH:
            # The refresh is best effort: the stored data is the answer either way.
            # A probe of a failing upstream is not held back again by the worker.
            with contextlib.suppress(CachedProxyError, redis.RedisError):
                self._lead([f for f in self._join(stale, api.miss_wait_timeout) if f.leader],
                           background=gate is not Asking.PROBE)
            return Read(_checked(entries, not_found), Served.STALE)
        fallback = action is ReadAction.FETCH_OR_FALLBACK
        wait = api.stale_wait_timeout if fallback else api.miss_wait_timeout
        try:
            collapsed = self._fetch(stale, wait, client)
        except FALLBACK_ERRORS as exc:
            if not fallback:
                raise
            return Read(_checked(entries, not_found), Served.STALE_IF_ERROR,
                        upstream_status=exc.upstream_status)
        return Read(_checked(self.entries.read(resources), not_found),
                    Served.COLLAPSED if collapsed else Served.MISS)

    def ping(self) -> None:
        """One round trip to Redis; raises as a read does when Redis is unreachable."""
        self.entries.redis.ping()

    def _fetch(self, resources: Sequence[str], wait: float, client: str | None) -> bool:
        self.misses.admit(client, lambda: not all(self.flights.held(resources)))
        flights = self._join(resources, self.current().api.miss_wait_timeout)
        self._lead([f for f in flights if f.leader])
        deadline = time.monotonic() + wait
        outcomes = [self._wait(f, deadline, wait) for f in flights]
        # In the view's resource order, so an unknown event is a 404 whatever else failed.
        for outcome in outcomes:
            if not outcome.ok:
                raise outcome.error()
        return not any(f.leader for f in flights)

    def _gate(self, resources: Sequence[str], now: float) -> Asking:
        """Whether asking upstream for these may go, may go as the probe of a failing
        upstream, or would only repeat a failure (``HOLD``: every resource failed and
        its retry is not due, or its upstream is failing and its next probe is not
        due). The worker's refreshes probe; when none has for PROBE_OVERDUE seconds
        past due, this request's fetch takes the probe's place."""
        own = self.schedule.backing_off_each(resources, now)
        hold = self.current().api.miss_wait_timeout + PENDING_MARGIN
        for resource, backing_off in zip(resources, own, strict=True):
            if backing_off:
                continue
            gate = self.breaker.gate(upstream_of(resource), resource, now, hold, PROBE_OVERDUE)
            if gate.allowed:
                return Asking.PROBE if gate.probe else Asking.GO
        return Asking.HOLD

    def _join(self, resources: Sequence[str], longest_wait: float) -> list[Flight]:
        # Until its task starts, a flight we lead is held as long as anyone may wait
        # on it: a task message lost on its way then blocks the resource no longer.
        hold_ms = int((longest_wait + PENDING_MARGIN) * 1000)
        return [self.flights.join(r, hold_ms=hold_ms) for r in resources]

    def _lead(self, flights: Sequence[Flight], background: bool = False) -> None:
        if not flights:
            return
        # A flight that ended between our read and our lock may have filled the cache.
        current = self.entries.read([f.resource for f in flights])
        now = self.clock()
        for flight, entry in zip(flights, current, strict=True):
            if _fresh(entry, now):
                self.flights.finish(flight, Outcome())
                continue
            try:
                self.enqueue(flight.resource, flight.token, background)
            except CachedProxyError as exc:
                self.flights.finish(flight, Outcome.failed(exc))
                raise

    def _wait(self, flight: Flight, deadline: float, wait: float) -> Outcome:
        remaining = max(deadline - time.monotonic(), 0.001)
        outcome = self.flights.wait(flight, remaining, self.waiting_redis)
        if outcome is None:
            raise FetchTimeout(f"upstream fetch did not finish within {wait:g} s")
        return outcome


def _fresh(entry: Entry | None, now: float) -> bool:
    return entry is not None and entry.is_fresh(now)


def _checked(entries: Sequence[Entry | None], not_found: str) -> list[Entry]:
    """Entries that exist and are not negative, or the error that says why not."""
    for entry in entries:
        if entry is not None and entry.status == 404:
            raise NotFound(not_found)
    if any(entry is None for entry in entries):
        raise CachedProxyError("cache entry vanished after its fetch")
    return list(entries)  # type: ignore[arg-type]
