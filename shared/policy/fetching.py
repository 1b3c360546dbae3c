"""What a fetch is for and what follows from it, as pure functions of values: why it
runs (``Cause``), whether it goes at all, what it costs the upstream's budget, and what
a failure leaves behind. worker/refresh.py asks and carries out the answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.errors import CachedProxyError, NotFound
from shared.policy.timing import recently_checked, retry_delay, upstream_failing


class Cause(enum.Enum):
    """What started a fetch."""

    MISS = "miss"  # a client waits for it (the API led its flight)
    BACKGROUND = "background"  # stale data was served; nobody waits (stale-while-revalidate)
    SCHEDULED = "scheduled"  # the refresh schedule's, before the data goes stale
    ON_DEMAND = "on_demand"  # an operator's "refresh now"

    @property
    def ahead(self) -> bool:
        """No client waits: paced to the refreshes' share of the upstream's budget, held
        while the upstream fails, and the resource joins the live set once stored.
        Otherwise the fetch spends from the misses' share, or is refused."""
        return self in (Cause.BACKGROUND, Cause.SCHEDULED)


def skip_as_recent(cause: Cause, status: int | None, checked_at: float, now: float,
                   ttl: float, ratio: float) -> bool:
    """A scheduled refresh of data (``status`` 200) validated less than half a refresh
    period ago is not fetched again; nothing else is skipped (a 404 stored, no entry,
    a client waiting or an operator asking)."""
    return (cause is Cause.SCHEDULED and status == 200
            and recently_checked(checked_at, now, ttl, ratio))


def fetch_cost(validators: int | None) -> float:
    """Upstream requests a fetch is expected to make: one per page stored (each asked
    again with its validators), one when nothing (or only a 404) is stored."""
    return float(max(validators or 0, 1))


def storable(size: int, max_entry_bytes: int) -> bool:
    """Whether upstream data of ``size`` bytes (encoded) may be stored: larger, it would
    crowd out everything else, and what is stored stays."""
    return size <= max_entry_bytes


@dataclass(frozen=True)
class Backoff:
    """Retries of a failing resource: ``base`` seconds doubling, at most ``cap``."""

    base: float
    cap: float


@dataclass(frozen=True)
class AfterFailure:
    """What follows a fetch that did not store data."""

    not_found: bool  # a 404: remembered for the negative TTL, and off the schedule
    retry_in: float | None = None  # otherwise: seconds until the resource's next try
    upstream_failed: bool = False  # count it against the upstream as a whole


def after_failure(error: CachedProxyError, failures: int, backoff: Backoff,
                  retry_after: float | None = None) -> AfterFailure:
    """The decision after a fetch failed with ``error``, the resource's ``failures`` in
    a row, this one included.

    A 404 is an answer, not a failure: remembered, and the resource leaves the
    schedule. A failure keeps the stored data and retries after an exponential
    back-off (at least a 429's Retry-After); an upstream unreachable, timing out, 5xx,
    429 or refusing our credentials counts against the upstream as a whole."""
    if isinstance(error, NotFound):
        return AfterFailure(not_found=True)
    return AfterFailure(False, retry_in=retry_delay(failures, backoff.base, backoff.cap,
                                                    retry_after),
                        upstream_failed=upstream_failing(error))


def retry_at(now: float, probe_at: float | None, retry_in: float | None) -> float:
    """When a failed resource is tried again: with its upstream failing it becomes the
    upstream's next probe (``probe_at``), else after its own back-off."""
    return probe_at if probe_at is not None else now + (retry_in or 0.0)
