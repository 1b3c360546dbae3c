"""What a read serves, as pure functions of values: fresh, stale while revalidating,
stale because upstream fails, or a fetch. api/reader.py asks and carries out the answer.

Reading a view (RFC 5861's windows, measured past each part's freshness):

    every part fresh                          -> SERVE              (a hit)
    all good within stale_while_revalidate    -> SERVE_AND_REFRESH  (or SERVE_STALE while
                                                 upstream is backing off)
    all good within stale_if_error            -> FETCH_OR_FALLBACK  (or SERVE_STALE while
                                                 upstream is backing off)
    otherwise (missing, negative past its
    time, or too old)                         -> FETCH
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from shared.store.entry import Entry


class Served(enum.Enum):
    """How a view request was answered: the one value the response's Cache-Status, the
    outcome metric and the request log are all made from."""

    HIT = "hit"
    MISS = "miss"  # fetched from upstream for this request
    COLLAPSED = "collapsed"  # a miss that only waited on other requests' fetches
    STALE = "stale"  # served while one refresh runs (stale-while-revalidate)
    STALE_IF_ERROR = "stale_if_error"  # served because upstream failed or backs off
    NEGATIVE = "negative"  # a remembered upstream 404
    ERROR = "error"  # no usable data: upstream, Redis or the fetch failed
    LOCAL = "local"  # the API process's own copy, served while Redis is unreachable


class Staleness(enum.Enum):
    """How usable the stored parts of a view are, taken together."""

    FRESH = "fresh"
    REVALIDATE = "stale-while-revalidate"  # good data, a little past freshness
    FALLBACK = "stale-if-error"  # good data to fall back on if upstream fails
    UNUSABLE = "unusable"  # something missing, or too old to serve


class ReadAction(enum.Enum):
    """What a read does with the entries it found (``read_action``)."""

    SERVE = "serve"
    SERVE_AND_REFRESH = "serve and refresh"
    SERVE_STALE = "serve stale"  # upstream is backing off: do not ask it
    FETCH_OR_FALLBACK = "fetch, or serve stale if it fails"
    FETCH = "fetch"


@dataclass(frozen=True)
class Windows:
    """Seconds past freshness that stored good data may still be served."""

    stale_while_revalidate: float
    stale_if_error: float


def _good_until(entry: Entry | None, now: float, grace: float, negative: bool = False
                ) -> bool:
    """Fresh, or good data (a 200; with ``negative``, a remembered 404 too) at most
    ``grace`` seconds past its freshness."""
    return entry is not None and (entry.is_fresh(now) or (
        (entry.status == 200 or negative) and now < entry.fresh_until + grace))


def staleness(entries: Sequence[Entry | None], now: float, windows: Windows) -> Staleness:
    """How usable the parts are: the least usable part decides."""
    if all(e is not None and e.is_fresh(now) for e in entries):
        return Staleness.FRESH
    # A remembered 404 is served while it is asked again, as data is: clients asking for
    # an id upstream does not have do not all wait on that fetch each time it expires.
    # It never stands in for an upstream failing (stale-if-error).
    if all(_good_until(e, now, windows.stale_while_revalidate, negative=True)
           for e in entries):
        return Staleness.REVALIDATE
    if all(_good_until(e, now, windows.stale_if_error) for e in entries):
        return Staleness.FALLBACK
    return Staleness.UNUSABLE


def read_action(state: Staleness, backing_off: bool) -> ReadAction:
    """What a read does. ``backing_off``: asking upstream for the stale parts would
    only repeat a failure (the resource's retry or the upstream's probe is not due)."""
    if state is Staleness.FRESH:
        return ReadAction.SERVE
    if state is Staleness.UNUSABLE:
        return ReadAction.FETCH  # nothing to fall back on: a client is waiting
    if backing_off:
        return ReadAction.SERVE_STALE
    if state is Staleness.REVALIDATE:
        return ReadAction.SERVE_AND_REFRESH
    return ReadAction.FETCH_OR_FALLBACK


def copy_usable(fresh_until: float, now: float, stale_if_error: float) -> bool:
    """Whether an API process's own copy of a view may be served while Redis is
    unreachable: fresh, or less than ``stale_if_error`` past its freshness (RFC 5861
    section 4; the store failing is an error like upstream failing)."""
    return now < fresh_until + max(stale_if_error, 0.0)
