"""The worker reconnects to a broker that was away within a second of its return."""

from __future__ import annotations

from typing import Any

from kombu.utils.functional import fxrange

from worker import app
from worker.consumer import RECONNECT_INTERVAL, Consumer


class Connection:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
        self.calls.append(kwargs)
        return self


def test_the_worker_is_celery_s_consumer_trying_the_broker_every_second():
    assert app.conf.worker_consumer == "worker.consumer:Consumer"
    consumer = Consumer.__new__(Consumer)  # only what ensure_connected reads
    consumer.app, consumer.first_connection_attempt = app, False
    conn = Connection()
    assert consumer.ensure_connected(conn) is conn
    [call] = conn.calls
    # kombu's retry_over_time waits these intervals between attempts
    waits = fxrange(call["interval_start"], call["interval_max"] + call["interval_start"],
                    call["interval_step"], repeatlast=True)
    assert [next(waits) for _ in range(6)] == [0, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert RECONNECT_INTERVAL == 1.0
