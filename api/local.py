"""Each API process's own copy of the views it served last, and what it does with it.

The copy (body, validators, freshness, the resources it was made of) is bounded. Two uses:

- Hits without Redis: Redis tells the process which cache entries change (``Tracker``:
  ``CLIENT TRACKING ... BCAST PREFIX <entry keys>`` on one dedicated RESP3 connection),
  and a copy whose resources changed is dropped. A fresh copy is served without asking
  Redis when the tracking connection is up, every notice that has reached it is applied
  (a non-blocking read before each such hit) and no read of its resources is due to be
  recorded for the refresh schedule.
- While Redis cannot be reached: views are answered from the copy under the
  stale-if-error rule and 503 ``store_unavailable`` for the rest, without waiting on
  Redis: after a failed attempt only one request per ``PROBE_INTERVAL`` tries Redis
  again, and the first that succeeds ends the outage for all.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.5  # seconds between tries of an unreachable Redis
TRACKING_CHECK = 1.0  # seconds between checks that the tracking connection is alive
CHANGES_KEPT = 10_000  # resources whose last change notice is remembered
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
    resources: tuple[str, ...] = ()
    session: int = 0  # the tracking session it was made in (0: none): hits need it current
    status: int = 200  # 404: a remembered upstream 404 (the body is the JSON error)


Key = tuple[str, str]  # view name, parameters


class Copies:
    """The views served last, by view and parameters; the least recently served are
    dropped past ``count`` views or ``max_bytes`` of bodies."""

    def __init__(self, count: int = COPIES, max_bytes: int = COPY_BYTES) -> None:
        self.count = count
        self.max_bytes = max_bytes
        self.bytes = 0
        self._copies: OrderedDict[Key, Copy] = OrderedDict()
        self._using: dict[str, set[Key]] = {}  # resource -> the copies made of it
        self._lock = threading.Lock()

    def get(self, key: Key) -> Copy | None:
        return self._copies.get(key)

    def put(self, key: Key, copy: Copy) -> None:
        with self._lock:
            self._remove(key)
            if len(copy.body) > self.max_bytes:
                return
            self._copies[key] = copy
            self.bytes += len(copy.body)
            for resource in copy.resources:
                self._using.setdefault(resource, set()).add(key)
            while len(self._copies) > self.count or self.bytes > self.max_bytes:
                self._remove(next(iter(self._copies)))

    def drop(self, resources: Sequence[str]) -> None:
        """Forget every copy made of any of these resources (they changed in Redis)."""
        with self._lock:
            for resource in resources:
                for key in list(self._using.get(resource, ())):
                    self._remove(key)

    def _remove(self, key: Key) -> None:
        old = self._copies.pop(key, None)
        if old is None:
            return
        self.bytes -= len(old.body)
        for resource in old.resources:
            keys = self._using.get(resource)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._using[resource]

    def touch(self, key: Key, etag: str, fresh_until: float, checked_at: float,
              session: int = 0) -> bool:
        """Note a view served again from Redis: its copy, when of the same data, takes the
        new freshness and tracking session. False when there is no such copy (it needs
        the body: ``put``)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None or copy.etag != etag:
                return False
            if (copy.fresh_until, copy.checked_at, copy.session) != (
                    fresh_until, checked_at, session):
                self._copies[key] = Copy(copy.body, etag, copy.modified, fresh_until,
                                         checked_at, copy.resources, session, copy.status)
            self._copies.move_to_end(key)
            return True


@dataclass
class Tracker:
    """Which cache entries changed in Redis, told by Redis itself.

    One dedicated RESP3 connection with ``CLIENT TRACKING on BCAST PREFIX <entry
    prefix>``: Redis pushes an ``invalidate`` message for every entry key written,
    deleted, expired or evicted (None: everything, on FLUSHALL). ``current`` applies
    what has arrived and says whether copies of this session may be served; the
    connection is made on first use, checked once per ``TRACKING_CHECK``, and made again
    at most once per ``PROBE_INTERVAL`` after it broke (a new session: older copies are
    not served as hits any more). ``changes`` counts notices, so that a copy made from a
    read during which one of its entries changed is not kept as current
    (``changed_since``).
    """

    client: redis.Redis
    entry_prefix: str  # "<prefix>:entry:"
    on_change: Callable[[list[str]], None]  # resources whose entries changed
    session: int = 0  # 0 while not connected
    changes: int = 0
    _conn: Any = None  # a redis-py Connection with tracking on
    _sessions: int = 0
    _retry_at: float = 0.0
    _check_at: float = 0.0
    _changed: OrderedDict[str, int] = field(default_factory=OrderedDict)  # resource -> notice
    _forgotten: int = 0  # the last notice dropped from _changed (it is bounded)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def changed_since(self, resources: Sequence[str], notice: int) -> bool:
        """Whether an entry of these resources changed after notice number ``notice``
        (as far as the notices applied so far tell)."""
        if self._forgotten > notice:
            return True
        return any(self._changed.get(r, 0) > notice for r in resources)

    def current(self, now: float, blocking: bool = True) -> int:
        """Apply every notice that has arrived; the session copies may be served from
        (0: none may: not connected). Not ``blocking`` (on the event loop): 0 as well
        when that would wait on Redis (a connect, the periodic check) or on a thread
        doing so."""
        if not blocking:
            if self._conn is None or now >= self._check_at:
                return 0
            if not self._lock.acquire(blocking=False):
                return 0
            try:
                return self._current(now)
            finally:
                self._lock.release()
        with self._lock:
            return self._current(now)

    def _current(self, now: float) -> int:
        try:
            if self._conn is None:
                if now < self._retry_at:
                    return 0
                self._connect(now)
            conn = self._conn
            assert conn is not None
            while conn.can_read(timeout=0):
                conn.read_response(push_request=True)  # pushes go to _invalidated
            if now >= self._check_at:
                conn.send_command("PING")
                conn.read_response()
                self._check_at = now + TRACKING_CHECK
            return self.session
        except (redis.RedisError, OSError) as exc:
            self._broken(now, exc)
            return 0

    def _connect(self, now: float) -> None:
        self._retry_at = now + PROBE_INTERVAL
        conn: Any = self.client.connection_pool.make_connection()
        conn.protocol = 3  # pushes on the same connection
        conn.connect()
        conn._parser.set_invalidation_push_handler(self._invalidated)
        conn.send_command("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", self.entry_prefix)
        conn.read_response()
        self._conn = conn
        self._sessions += 1
        self.session = self._sessions
        self._check_at = now + TRACKING_CHECK

    def _invalidated(self, message: list[Any]) -> None:
        self.changes += 1
        keys = message[1] if len(message) > 1 else None
        if keys is None:  # FLUSHALL / FLUSHDB: every copy of this session is unknown
            self.session = self._sessions = self._sessions + 1
            return
        start = len(self.entry_prefix)
        resources = [(k.decode() if isinstance(k, bytes) else k)[start:] for k in keys]
        for resource in resources:
            self._changed[resource] = self.changes
            self._changed.move_to_end(resource)
        while len(self._changed) > CHANGES_KEPT:
            _, self._forgotten = self._changed.popitem(last=False)
        self.on_change(resources)

    def _broken(self, now: float, exc: BaseException) -> None:
        if self._conn is not None:
            log.warning("entry tracking lost; hits read Redis until it is back",
                        extra={"error": type(exc).__name__})
            self._conn.disconnect()
        self._conn = None
        self.session = 0
        self.changes += 1
        self._retry_at = max(self._retry_at, now + PROBE_INTERVAL)


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
