"""The worker's consumer: Celery's own, reconnecting to the broker promptly.

Celery's consumer reconnects with kombu's default intervals, 2 s growing by 2 s to 30 s,
so after a 30 s Redis outage a worker may take another 10 s to notice Redis is back,
and misses wait (504) meanwhile. This one tries every ``RECONNECT_INTERVAL`` instead:
one cheap connection attempt a second while the broker is away.
"""

from __future__ import annotations

import functools
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

RECONNECT_INTERVAL = 1.0  # seconds at most between attempts to reach the broker


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=0, interval_step=RECONNECT_INTERVAL / 2,
            interval_max=RECONNECT_INTERVAL)
        return super().ensure_connected(conn)
