"""Beat's ticks summed up: one INFO line a minute from each worker, instead of one a
tick (each tick's own line is at DEBUG)."""

from __future__ import annotations

import threading
from typing import Any

PERIOD = 60.0  # seconds a summary covers


class TickSummary:
    """The ticks a worker ran since its last summary line."""

    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self._lock = threading.Lock()  # ticks may run on several of the pool's threads
        self._since: float | None = None
        self._ticks = self._claimed = self._dropped = self._probes = 0
        self._slowest_ms = 0.0

    def add(self, now: float, claimed: int, dropped: int, probes: int, ms: float
            ) -> dict[str, Any] | None:
        """Count one tick; the summary to log once ``period`` has passed since the
        first tick counted, else None."""
        with self._lock:
            if self._since is None:
                self._since = now
            self._ticks += 1
            self._claimed += claimed
            self._dropped += dropped
            self._probes += probes
            self._slowest_ms = max(self._slowest_ms, ms)
            if now - self._since < self.period:
                return None
            summary = {"ticks": self._ticks, "claimed": self._claimed,
                       "idle_dropped": self._dropped, "probes": self._probes,
                       "slowest_ms": round(self._slowest_ms, 2),
                       "period_s": round(now - self._since, 1)}
            self._since = now
            self._ticks = self._claimed = self._dropped = self._probes = 0
            self._slowest_ms = 0.0
            return summary
