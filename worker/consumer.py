"""The worker's consumer: Celery's own, reconnecting to the broker promptly, and
surviving a lost broker with tasks reserved.

Celery's consumer reconnects with kombu's default intervals, 2 s growing by 2 s to 30 s,
so after a 30 s Redis outage a worker may take another 10 s to notice Redis is back,
and misses wait (504) meanwhile. This one tries every ``RECONNECT_INTERVAL`` instead:
one cheap connection attempt a second while the broker is away.

When the connection is lost while the worker holds reserved tasks (taken from the queue,
not yet started), Celery collects the connection and then closes it; closing tries to
put those tasks back on the queue through a transport the collect has already let go,
and the AttributeError this raises ends the worker ("Unrecoverable error"). Here that
close is allowed to fail: the broker is gone anyway, and the reserved tasks are
delivered again by the Redis transport once their visibility timeout passes.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

RECONNECT_INTERVAL = 1.0  # seconds at most between attempts to reach the broker

log = logging.getLogger(__name__)


def _close_quietly(close: Any) -> Any:
    @functools.wraps(close)
    def closing() -> None:
        try:
            close()
        except AttributeError as exc:  # the transport is gone: see the module's note
            log.warning("broker connection closed without putting reserved tasks back; "
                        "they are delivered again after the visibility timeout",
                        extra={"error": repr(exc)})

    return closing


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=0, interval_step=RECONNECT_INTERVAL / 2,
            interval_max=RECONNECT_INTERVAL)
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            self.connection.close = _close_quietly(self.connection.close)
        super().on_connection_error_after_connected(exc)
