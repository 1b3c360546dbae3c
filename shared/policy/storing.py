"""What a fetch leaves in the cache, as a pure function of what upstream said: store it,
revalidate it, remember a 404, or keep the old entry and retry after a back-off.
worker/tasks.py asks and carries out the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.errors import CachedProxyError, NotFound
from shared.policy.timing import retry_delay, upstream_failing


class Stored(enum.Enum):
    """What a fetch leaves in the cache."""

    REPLACED = "replaced"  # a 200: the new entry, whole
    REVALIDATED = "revalidated"  # a 304: the same data, fresh again
    NOT_FOUND = "not found"  # a 404: remembered for the negative TTL
    KEPT = "kept"  # upstream failed: the stored entry stays as it was


@dataclass(frozen=True)
class AfterFetch:
    """What to do once upstream has answered (or not): store, and when to refresh."""

    stored: Stored
    keep_scheduled: bool  # False: the resource leaves the refresh schedule
    retry_in: float | None = None  # failed: seconds until the resource's next try
    upstream_failed: bool = False  # count it against the upstream as a whole


@dataclass(frozen=True)
class Backoff:
    base: float
    cap: float


def after_fetch(changed: bool | None, error: CachedProxyError | None, failures: int,
                backoff: Backoff, retry_after: float | None = None) -> AfterFetch:
    """The decision after a fetch: ``changed`` (200 True, 304 False) when it worked,
    else the ``error`` and the resource's ``failures`` in a row, this one included.

    A 404 is an answer, not a failure: remembered, and the resource leaves the
    schedule. A failure keeps the stored data and retries after an exponential
    back-off (at least a 429's Retry-After)."""
    if error is None:
        return AfterFetch(Stored.REPLACED if changed else Stored.REVALIDATED, True)
    if isinstance(error, NotFound):
        return AfterFetch(Stored.NOT_FOUND, keep_scheduled=False)
    return AfterFetch(Stored.KEPT, True,
                      retry_in=retry_delay(failures, backoff.base, backoff.cap, retry_after),
                      upstream_failed=upstream_failing(error))
