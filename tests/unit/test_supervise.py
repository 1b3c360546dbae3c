"""The launcher's supervision rules: when to restart, when to give up, what signals do."""

import pytest

from launcher.supervise import (
    STABLE_AFTER,
    Restart,
    after_exit,
    on_stop_signal,
)


@pytest.mark.parametrize(
    ("previous_crashes", "uptime", "decision"),
    [
        (0, 0.1, Restart(0.5, 1)),  # the first crash: restart soon
        (1, 0.1, Restart(1.0, 2)),  # each quick crash doubles the wait
        (2, 3.0, Restart(2.0, 3)),
        (3, STABLE_AFTER - 0.1, Restart(4.0, 4)),
        (4, 0.1, None),  # the fifth quick crash in a row: give up
        (4, STABLE_AFTER, Restart(0.5, 1)),  # up long enough: history forgotten
        (40, 3600.0, Restart(0.5, 1)),
    ],
)
def test_after_exit(previous_crashes, uptime, decision):
    """Quick crashes back off exponentially and end the run at the fifth; a process
    that stayed up long enough starts over."""
    assert after_exit(previous_crashes, uptime) == decision


@pytest.mark.parametrize(
    ("signals_so_far", "action"), [(0, "stop"), (1, "absorb"), (2, "kill"), (5, "kill")]
)
def test_on_stop_signal(signals_so_far, action):
    """First signal: orderly stop; second: absorbed; third and later: kill now."""
    assert on_stop_signal(signals_so_far).action == action
