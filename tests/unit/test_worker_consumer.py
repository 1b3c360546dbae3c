"""The worker reconnects to a broker that was away within a second of its return, and
survives the loss with tasks reserved."""

from __future__ import annotations

from typing import Any

import pytest
from kombu.utils.functional import fxrange

from worker import app
from worker.consumer import Consumer, _close_quietly


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


def test_closing_a_lost_broker_connection_may_fail_on_the_gone_transport(caplog):
    """Closing the connection after a loss tolerates kombu's AttributeError (its
    transport already let go), logging it; anything else still propagates."""
    def gone() -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    def refused() -> None:
        raise ConnectionRefusedError

    _close_quietly(gone)()
    assert "reserved tasks" in caplog.text
    with pytest.raises(ConnectionRefusedError):
        _close_quietly(refused)()
