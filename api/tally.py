"""Each minute's cache outcomes by view, in Redis, for the status page's last hour
(one hash, ``Keys.outcomes``; the plan task deletes the minutes past the hour).

A request adds one to this process's in-memory count (a lock and a dict: no I/O on the
hit path); a daemon thread adds the counts to the current minute's Redis hash every
``FLUSH_INTERVAL`` seconds, in one pipeline, so every process of every API server adds
to the same minutes. Counts a flush could not write are kept for the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

import redis

from shared.policy.status import minute_of
from shared.store.keys import Keys
from shared.telemetry.metrics import SEP  # the same field separator as the metrics hash

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 5.0


class Tally:
    """This process's cache outcomes since its last flush, by (view, outcome)."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float]) -> None:
        self.redis = client
        self.keys = keys
        self.clock = clock
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def count(self, view: str, outcome: str) -> None:
        """One answer of ``view`` served as ``outcome``."""
        with self._lock:
            self._counts[(view, outcome)] += 1

    def flush(self) -> None:
        """Add the counts to the current minute's hash in Redis."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        minute = minute_of(self.clock())
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for (view, outcome), n in counts.items():
                    pipe.hincrby(self.keys.outcomes(), f"{minute}{SEP}{view}{SEP}{outcome}", n)
                pipe.execute()
        except redis.RedisError:  # Redis away: kept for the next flush
            with self._lock:
                self._counts.update(counts)

    def start(self) -> Tally:
        """Flush every FLUSH_INTERVAL seconds on a daemon thread until ``stop``."""
        def run() -> None:
            while not self._stopped.wait(FLUSH_INTERVAL):
                try:
                    self.flush()
                except Exception:  # never let the thread die
                    log.exception("outcome tally flush failed")

        threading.Thread(target=run, name="outcome-tally", daemon=True).start()
        return self

    def stop(self) -> None:
        """End the flushing thread after its current wait, flushing what is counted."""
        self._stopped.set()
        self.flush()
