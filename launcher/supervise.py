"""When to restart a process that exited, as a pure rule of its recent history.

``make run`` restarts a child that exits without being asked to, after a back-off that
doubles with each crash that follows quickly on the last (0.5 s, 1 s, 2 s, 4 s). A
process that stayed up for ``STABLE_AFTER`` seconds has its history forgotten.
``GIVE_UP_AFTER`` quick crashes in a row end the run: something is wrong that
restarting will not fix (a port taken, a broken configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 0.5
STABLE_AFTER = 30.0  # seconds up after which earlier crashes are forgotten
GIVE_UP_AFTER = 5  # quick crashes in a row


@dataclass(frozen=True)
class Restart:
    """Restart after ``delay`` seconds; ``crashes`` is the count of quick crashes so far."""

    delay: float
    crashes: int


def after_exit(previous_crashes: int, uptime: float) -> Restart | None:
    """What to do when a process exits unasked after ``uptime`` seconds, having crashed
    ``previous_crashes`` times in quick succession before: a ``Restart``, or ``None``
    to give up."""
    crashes = 1 if uptime >= STABLE_AFTER else previous_crashes + 1
    if crashes >= GIVE_UP_AFTER:
        return None
    return Restart(FIRST_DELAY * 2 ** (crashes - 1), crashes)


@dataclass(frozen=True)
class StopStep:
    """What a stop signal does: begin the orderly stop, absorb it, or kill at once."""

    action: str  # "stop", "absorb" or "kill"


def on_stop_signal(signals_so_far: int) -> StopStep:
    """The first stop signal starts an orderly stop; a second is absorbed (``make`` and
    the terminal often both send one); a third kills everything at once."""
    if signals_so_far == 0:
        return StopStep("stop")
    if signals_so_far == 1:
        return StopStep("absorb")
    return StopStep("kill")
