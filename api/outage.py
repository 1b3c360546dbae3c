"""While Redis cannot be reached: whether a request should try it, without waiting on it.

Views are then answered from the process's copies (api/copies.py) or the server's shelf
(api/shelf.py) under the stale-if-error rule, and 503 ``store_unavailable`` for the
rest. After a failed attempt only one request per ``PROBE_INTERVAL`` asks Redis again
(a PING), and the first that succeeds ends the outage for all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.5  # seconds between tries of an unreachable Redis


class Outage:
    """Whether to try Redis now. After a failure, one caller per ``interval`` is let
    through (the probe); a success ends the outage."""

    def __init__(self, ping: Callable[[], None], clock: Callable[[], float],
                 interval: float = PROBE_INTERVAL) -> None:
        self.ping = ping  # one round trip to Redis; raises when it is unreachable
        self.clock = clock
        self.interval = interval
        self.since: float | None = None
        self._next_probe = 0.0
        self._lock = threading.Lock()

    def reachable(self, now: float) -> bool:
        """Whether this request may use Redis. While Redis is thought unreachable one
        request per probe interval asks it with a PING: the outage ends as soon as
        Redis answers, not once that request's own read (a miss waits on upstream) is
        done, and the requests behind it read Redis again."""
        if not self.should_try(now):
            return False
        since = self.since
        if since is None:
            return True
        try:
            self.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.unreachable(exc)
            return False
        log.info("Redis reachable again", extra={"unreachable_s": round(self.clock() - since, 1)})
        self.succeeded()
        return True

    def unreachable(self, exc: redis.RedisError) -> None:
        """A Redis command failed for want of Redis: serve copies meanwhile."""
        if self.since is None:
            log.warning("Redis unreachable: serving this process's copies",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
        self.failed(self.clock())

    def should_try(self, now: float) -> bool:
        """Whether a caller may try Redis now: always, but one per interval in an outage."""
        if self.since is None:
            return True
        with self._lock:
            if now >= self._next_probe:
                self._next_probe = now + self.interval
                return True
            return False

    def failed(self, now: float) -> None:
        """Redis failed a caller at ``now``: the outage starts, or goes on."""
        with self._lock:
            if self.since is None:
                self.since = now
            self._next_probe = max(self._next_probe, now + self.interval)

    def succeeded(self) -> None:
        """Redis answered: the outage is over."""
        self.since = None
