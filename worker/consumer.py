"""The worker's consumer: Celery's own, reconnecting to the broker promptly, and
surviving a lost broker with tasks reserved.

Celery's consumer reconnects with kombu's default intervals, 2 s growing by 2 s to 30 s,
so after a 30 s Redis outage a worker may take another 10 s to notice Redis is back,
and misses wait (504) meanwhile. This one tries every ``RECONNECT_INTERVAL`` instead:
one cheap connection attempt a second while the broker is away.

When the connection is lost while the worker holds reserved tasks (taken from the queue,
not yet started), Celery collects the connection and then closes it; closing tries to
put those tasks back on the queue through a transport the collect has already let go,
and the AttributeError this raises ends the worker ("Unrecoverable error"). The same
happens to the acknowledgement of a task that started on the lost connection, which
the threads pool sends from the event loop after the task began: by then the connection
may be gone. Here that close and that acknowledgement are allowed to fail: the broker is
gone anyway, and the tasks are delivered again by the Redis transport once their
visibility timeout passes (a fetch run twice is still one flight).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

RECONNECT_INTERVAL = 1.0  # seconds at most between attempts to reach the broker

log = logging.getLogger(__name__)


def _quietly(step: Any, skipped: str) -> Any:
    """``step``, tolerating kombu's AttributeError from a broker connection that was
    collected after a loss (its transport has let go): logged as ``skipped``."""
    @functools.wraps(step)
    def quietly(*args: Any, **kwargs: Any) -> None:
        try:
            step(*args, **kwargs)
        except AttributeError as exc:  # the transport is gone: see the module's note
            log.warning(skipped, extra={"error": repr(exc)})

    return quietly


def _close_quietly(close: Any) -> Any:
    return _quietly(close, "broker connection closed without putting reserved tasks back; "
                           "they are delivered again after the visibility timeout")


def _ack_quietly(ack: Any) -> Any:
    return _quietly(ack, "a task's message was not acknowledged: its broker connection was "
                         "lost; it is delivered again after the visibility timeout")


class Consumer(CeleryConsumer):
    """Celery's consumer, reconnecting promptly and surviving a lost broker."""

    def ensure_connected(self, conn: Any) -> Any:
        """Connect, trying every RECONNECT_INTERVAL, not with kombu's growing intervals."""
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=0, interval_step=RECONNECT_INTERVAL / 2,
            interval_max=RECONNECT_INTERVAL)
        return super().ensure_connected(conn)

    def call_soon_ack(self, p: Any, *args: Any, **kwargs: Any) -> Any:
        """Acknowledge a started task's message; a connection lost meanwhile is logged."""
        return super().call_soon_ack(_ack_quietly(p), *args, **kwargs)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """A lost connection: its close may fail to put reserved tasks back (logged)."""
        if self.connection is not None:
            self.connection.close = _close_quietly(self.connection.close)
        super().on_connection_error_after_connected(exc)
