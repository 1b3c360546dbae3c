"""What an API process does on its own while Redis is unreachable.

Each process keeps a bounded copy of the views it served last (body, validators and
freshness). While Redis cannot be reached it answers from that copy under the
stale-if-error rule, and 503 ``store_unavailable`` for the rest, without waiting on
Redis: after a failed attempt only one request per ``PROBE_INTERVAL`` tries Redis again,
and the first that succeeds ends the outage for all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

PROBE_INTERVAL = 0.5  # seconds between tries of an unreachable Redis
COPIES = 1024  # views kept per process
COPY_BYTES = 32 * 1024 * 1024  # and at most this many body bytes


@dataclass(frozen=True)
class Copy:
    """A view as this process last served it."""

    body: bytes
    etag: str
    modified: float  # Last-Modified (epoch seconds)
    fresh_until: float
    checked_at: float  # when upstream last confirmed its oldest part


class Copies:
    """The views served last, by view and parameters; the least recently served are
    dropped past ``count`` views or ``max_bytes`` of bodies."""

    def __init__(self, count: int = COPIES, max_bytes: int = COPY_BYTES) -> None:
        self.count = count
        self.max_bytes = max_bytes
        self.bytes = 0
        self._copies: OrderedDict[tuple[str, str], Copy] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Copy | None:
        return self._copies.get(key)

    def put(self, key: tuple[str, str], copy: Copy) -> None:
        with self._lock:
            old = self._copies.pop(key, None)
            if old is not None:
                self.bytes -= len(old.body)
            if len(copy.body) > self.max_bytes:
                return
            self._copies[key] = copy
            self.bytes += len(copy.body)
            while len(self._copies) > self.count or self.bytes > self.max_bytes:
                _, dropped = self._copies.popitem(last=False)
                self.bytes -= len(dropped.body)

    def touch(self, key: tuple[str, str], etag: str, fresh_until: float, checked_at: float
              ) -> bool:
        """Note a 304 for a view: its copy, when of the same data, takes the new
        freshness. False when there is no such copy (it needs the body: ``put``)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None or copy.etag != etag:
                return False
            if copy.fresh_until != fresh_until or copy.checked_at != checked_at:
                self._copies[key] = Copy(copy.body, etag, copy.modified, fresh_until,
                                         checked_at)
            self._copies.move_to_end(key)
            return True


class Outage:
    """Whether to try Redis now. After a failure, one caller per ``interval`` is let
    through (the probe); a success ends the outage."""

    def __init__(self, interval: float = PROBE_INTERVAL) -> None:
        self.interval = interval
        self.since: float | None = None
        self._next_probe = 0.0
        self._lock = threading.Lock()

    def should_try(self, now: float) -> bool:
        if self.since is None:
            return True
        with self._lock:
            if now >= self._next_probe:
                self._next_probe = now + self.interval
                return True
            return False

    def failed(self, now: float) -> None:
        with self._lock:
            if self.since is None:
                self.since = now
            self._next_probe = max(self._next_probe, now + self.interval)

    def succeeded(self) -> None:
        self.since = None
