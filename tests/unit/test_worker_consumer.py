"""The worker survives losing the broker with tasks reserved (its reconnection within a
second of the broker's return: tests/integration/test_recovery.py)."""

from __future__ import annotations

import pytest

from worker.consumer import _close_quietly


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
