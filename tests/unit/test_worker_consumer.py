"""The worker survives losing the broker with tasks reserved (its reconnection within a
second of the broker's return: tests/integration/test_recovery.py)."""

from __future__ import annotations

import pytest

from worker.consumer import _ack_quietly, _close_quietly


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


def test_acknowledging_a_task_of_a_lost_connection_may_fail_on_the_gone_transport(caplog):
    """The acknowledgement the threads pool sends after a task began tolerates the same
    AttributeError when the connection it came on was lost meanwhile."""
    acked = []

    def gone(logger: object, errors: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    _ack_quietly(gone)("logger", ())
    assert "not acknowledged" in caplog.text
    _ack_quietly(lambda *args: acked.append(args))("logger", ())
    assert acked == [("logger", ())]
    with pytest.raises(ConnectionRefusedError):
        _ack_quietly(lambda *_: (_ for _ in ()).throw(ConnectionRefusedError()))("l", ())
