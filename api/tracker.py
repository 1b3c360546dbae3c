"""Which cache entries changed in Redis, told by Redis itself: what lets a process serve
its copies (api/copies.py) as hits without asking Redis.

Redis pushes a notice for every entry key written, deleted, expired or evicted
(``CLIENT TRACKING ... BCAST PREFIX <entry keys>`` on one dedicated RESP3 connection),
and the copies made of that resource are dropped. A fresh copy is served without Redis
only while the tracking connection is up and every notice that has reached it has been
applied (a non-blocking read before each such hit).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from shared.bounded import LRU

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.5  # seconds between tries of a tracking connection that broke
TRACKING_CHECK = 1.0  # seconds between checks that the tracking connection is alive
CHANGES_KEPT = 10_000  # resources whose last change notice is remembered


def _on_invalidation(conn: Any, handler: Callable[[list[Any]], None]) -> None:
    """Have ``conn`` (a RESP3 redis-py connection) hand ``invalidate`` pushes to
    ``handler``. redis-py has no public call for it: this is the parser hook its own
    client-side cache uses (redis-py 5.1 and later, hence the dependency's floor)."""
    conn._parser.set_invalidation_push_handler(handler)


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
    _forgotten: int = 0  # the last notice dropped from _changed (it is bounded)
    _changed: LRU[str, int] = field(init=False)  # resource -> its last notice
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._changed = LRU(CHANGES_KEPT, self._forget)

    def _forget(self, resource: str, notice: int) -> None:
        self._forgotten = notice

    def changed_since(self, resources: Sequence[str], notice: int) -> bool:
        """Whether an entry of these resources changed after notice number ``notice``
        (as far as the notices applied so far tell)."""
        if self._forgotten > notice:
            return True
        return any((self._changed.peek(r) or 0) > notice for r in resources)

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
        _on_invalidation(conn, self._invalidated)
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
            self._changed.put(resource, self.changes)
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
