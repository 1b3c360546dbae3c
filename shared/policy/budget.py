"""How fast refreshes may ask an upstream, as pure functions: its request budget (the
catalogue's ``budget_per_hour``) and what the upstream itself says remains of its rate
limit (``X-RateLimit-Remaining`` until ``X-RateLimit-Reset``, as GitHub sends).

Refreshes spend at that rate, with a burst of ``BURST`` seconds of it (a token bucket,
kept as a virtual schedule in Redis, shared/store/budget.py); a refresh that would
overdraw it gets the next free turn and waits for it. A miss (a client is waiting) is
never held back, but what it spends counts the same, so refreshes slow down to make
room. Pacing by what remains, less a reserve for misses,
slows refreshes before the upstream's limit runs out rather than after.
"""

from __future__ import annotations

HOUR = 3600.0
BURST = 10.0  # seconds of the rate the bucket holds
RESERVE = 0.1  # of what the upstream says remains, kept for misses


def refresh_rate(budget_per_hour: int, remaining: int | None, reset_in: float | None
                 ) -> float | None:
    """Requests a second refreshes may make; None: no limit. The lower of the budget's
    rate and what remains (less the reserve) spread over the time to the reset."""
    rates = []
    if budget_per_hour > 0:
        rates.append(budget_per_hour / HOUR)
    if remaining is not None and reset_in is not None and reset_in > 0:
        rates.append(max(remaining * (1 - RESERVE), 0.0) / reset_in)
    return min(rates) if rates else None


def capacity(rate: float) -> float:
    """The bucket's size: BURST seconds of the rate, and at least one request."""
    return max(rate * BURST, 1.0)
