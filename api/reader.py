"""The API's read path: a hit is one Redis round trip; a miss joins a single flight.

On a miss every missing or expired resource gets one flight: the leader enqueues the
fetch task, and leader and followers alike wait on the flight's result key. Reads are
recorded for the refresh schedule in the same round trip, at most once per resource per
refresh period in each process. The API never calls upstream itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from shared.entry import Entry
from shared.errors import CachedProxyError, FetchTimeout, NotFound
from shared.flight import Flight, Flights, Outcome
from shared.refresh import ReadThrottle
from shared.schedule import Schedule
from shared.store import EntryStore

Enqueue = Callable[[str, str], None]  # (resource, flight token) -> fetch task enqueued


@dataclass(frozen=True)
class Read:
    entries: list[Entry]
    fetched: bool = False  # the request waited for upstream
    collapsed: bool = False  # ... and every fetch it waited on was another request's

    def fresh_for(self, now: float) -> float:
        """Seconds until the first of the entries stops being fresh."""
        return max(min(e.fresh_until for e in self.entries) - now, 0.0)


class Reader:
    def __init__(
        self,
        entries: EntryStore,
        flights: Flights,
        schedule: Schedule,
        enqueue: Enqueue,
        wait_timeout: float,
        waiting_redis: redis.Redis,
        read_period: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.entries = entries
        self.flights = flights
        self.schedule = schedule
        self.enqueue = enqueue
        self.wait_timeout = wait_timeout
        self.waiting_redis = waiting_redis  # socket timeout above wait_timeout
        self.reads = ReadThrottle(read_period)
        self.clock = clock

    def read(self, resources: Sequence[str]) -> Read:
        """Fresh entries of all resources, fetching the missing ones; raises on errors."""
        now = self.clock()
        record = self.reads.due(resources, now)
        entries = self.entries.read(
            resources, lambda pipe: self.schedule.record_reads(pipe, record, now))
        missing = [r for r, e in zip(resources, entries, strict=True) if not _usable(e, now)]
        if not missing:
            return Read(_checked(entries))
        collapsed = self._fetch(missing)
        return Read(_checked(self.entries.read(resources)), True, collapsed)

    def _fetch(self, resources: Sequence[str]) -> bool:
        flights = [self.flights.join(r) for r in resources]
        self._lead([f for f in flights if f.leader])
        deadline = time.monotonic() + self.wait_timeout
        outcomes = [self._wait(f, deadline) for f in flights]
        # In the view's resource order, so an unknown event is a 404 whatever else failed.
        for outcome in outcomes:
            if not outcome.ok:
                raise outcome.error()
        return not any(f.leader for f in flights)

    def _lead(self, flights: Sequence[Flight]) -> None:
        if not flights:
            return
        # A flight that ended between our read and our lock may have filled the cache.
        current = self.entries.read([f.resource for f in flights])
        now = self.clock()
        for flight, entry in zip(flights, current, strict=True):
            if _usable(entry, now):
                self.flights.finish(flight, Outcome())
                continue
            try:
                self.enqueue(flight.resource, flight.token)
            except CachedProxyError as exc:
                self.flights.finish(flight, Outcome.failed(exc))
                raise

    def _wait(self, flight: Flight, deadline: float) -> Outcome:
        remaining = max(deadline - time.monotonic(), 0.001)
        outcome = self.flights.wait(flight, remaining, self.waiting_redis)
        if outcome is None:
            raise FetchTimeout(f"upstream fetch did not finish within {self.wait_timeout:g} s")
        return outcome


def _usable(entry: Entry | None, now: float) -> bool:
    return entry is not None and entry.is_fresh(now)


def _checked(entries: Sequence[Entry | None]) -> list[Entry]:
    """Entries that exist and are not negative, or the error that says why not."""
    for entry in entries:
        if entry is not None and entry.status == 404:
            raise NotFound("no such event upstream")
    if any(entry is None for entry in entries):
        raise CachedProxyError("cache entry vanished after its fetch")
    return list(entries)  # type: ignore[arg-type]
