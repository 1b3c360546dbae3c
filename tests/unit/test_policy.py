"""The caching decisions as tables: what a read serves, what a fetch leaves behind."""

from __future__ import annotations

import pytest

from shared.errors import (
    FetchTimeout,
    NotFound,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from shared.policy.serving import (
    ReadAction,
    Staleness,
    Windows,
    copy_usable,
    read_action,
    staleness,
)
from shared.policy.storing import AfterFetch, Backoff, Stored, after_fetch
from shared.store.entry import fetched, not_found

NOW = 1_000_000.0
WINDOWS = Windows(stale_while_revalidate=60, stale_if_error=600)


def good(past_freshness: float):
    """A 200 entry whose freshness ended ``past_freshness`` seconds ago (negative:
    still fresh for that long)."""
    return fetched({"title": "t"}, (), NOW - 100 - past_freshness, 100)


def negative(past_freshness: float):
    return not_found(NOW - 30 - past_freshness, 30)


@pytest.mark.parametrize(
    ("entries", "state"),
    [
        ([good(-10)], Staleness.FRESH),
        ([good(-10), good(-1)], Staleness.FRESH),
        ([good(-0.001)], Staleness.FRESH),
        ([good(0)], Staleness.REVALIDATE),  # freshness ends at fresh_until exactly
        ([good(59.9)], Staleness.REVALIDATE),
        ([good(-10), good(30)], Staleness.REVALIDATE),  # the stalest part decides
        ([good(60)], Staleness.FALLBACK),
        ([good(599.9)], Staleness.FALLBACK),
        ([good(-10), good(300)], Staleness.FALLBACK),
        ([good(600)], Staleness.UNUSABLE),
        ([None], Staleness.UNUSABLE),
        ([good(-10), None], Staleness.UNUSABLE),  # one part missing: nothing to serve
        ([negative(-5)], Staleness.FRESH),  # a remembered 404 is an answer while fresh
        ([negative(1)], Staleness.REVALIDATE),  # served while asked again, as data is
        ([negative(59.9)], Staleness.REVALIDATE),
        ([negative(60)], Staleness.UNUSABLE),  # never as a fallback for a failing upstream
        ([good(30), negative(-5)], Staleness.REVALIDATE),
        ([good(30), negative(1)], Staleness.REVALIDATE),
        ([good(100), negative(1)], Staleness.UNUSABLE),
    ],
)
def test_staleness(entries, state):
    """Fresh while every part is; then good data is usable within the windows past its
    freshness; a missing part, an expired 404 or data past both windows is not."""
    assert staleness(entries, NOW, WINDOWS) is state


@pytest.mark.parametrize(
    ("state", "backing_off", "action"),
    [
        (Staleness.FRESH, False, ReadAction.SERVE),
        (Staleness.FRESH, True, ReadAction.SERVE),
        (Staleness.REVALIDATE, False, ReadAction.SERVE_AND_REFRESH),  # never stale alone
        (Staleness.REVALIDATE, True, ReadAction.SERVE_STALE),
        (Staleness.FALLBACK, False, ReadAction.FETCH_OR_FALLBACK),
        (Staleness.FALLBACK, True, ReadAction.SERVE_STALE),  # no retry storm
        (Staleness.UNUSABLE, False, ReadAction.FETCH),
        (Staleness.UNUSABLE, True, ReadAction.FETCH),  # nothing else can answer
    ],
)
def test_read_action(state, backing_off, action):
    """Stale data within stale-while-revalidate is served and refreshed; older data is
    refetched with the stale copy as fallback; while upstream backs off, stale data is
    served without asking it; with nothing usable, upstream is asked."""
    assert read_action(state, backing_off) is action


BACKOFF = Backoff(base=2, cap=300)


@pytest.mark.parametrize(
    ("changed", "error", "failures", "retry_after", "decision"),
    [
        (True, None, 0, None, AfterFetch(Stored.REPLACED, True)),
        (False, None, 0, None, AfterFetch(Stored.REVALIDATED, True)),
        (None, NotFound("gone", upstream_status=404), 0, None,
         AfterFetch(Stored.NOT_FOUND, keep_scheduled=False)),
        (None, UpstreamError("5xx", upstream_status=503), 1, None,
         AfterFetch(Stored.KEPT, True, retry_in=2, upstream_failed=True)),
        (None, UpstreamError("5xx", upstream_status=500), 3, None,
         AfterFetch(Stored.KEPT, True, retry_in=8, upstream_failed=True)),
        (None, UpstreamTimeout("slow"), 20, None,
         AfterFetch(Stored.KEPT, True, retry_in=300, upstream_failed=True)),
        (None, UpstreamError("429", upstream_status=429), 1, 120.0,
         AfterFetch(Stored.KEPT, True, retry_in=120, upstream_failed=True)),
        (None, UpstreamError("bad body", upstream_status=200), 2, None,
         AfterFetch(Stored.KEPT, True, retry_in=4, upstream_failed=False)),
        (None, FetchTimeout("interrupted"), 1, None,
         AfterFetch(Stored.KEPT, True, retry_in=2, upstream_failed=False)),
        (None, StoreUnavailable("redis"), 1, None,
         AfterFetch(Stored.KEPT, True, retry_in=2, upstream_failed=False)),
    ],
)
def test_after_fetch(changed, error, failures, retry_after, decision):
    """A 200 replaces, a 304 revalidates; a 404 is an answer (remembered, unscheduled),
    not a failure; failures keep the data and retry after a back-off that is never 0,
    doubles, is capped, and honours a longer Retry-After."""
    assert after_fetch(changed, error, failures, BACKOFF, retry_after) == decision


@pytest.mark.parametrize(
    ("now", "stale_if_error", "usable"),
    [
        (99.0, 0, True),  # fresh
        (100.0, 0, False),  # freshness over, no stale-if-error window
        (100.0, 60, True),  # stale, within the window
        (159.9, 60, True),
        (160.0, 60, False),  # the window is over
        (500.0, 60, False),
        (99.0, -5, True),  # a negative window counts as none
        (100.0, -5, False),
    ],
)
def test_a_process_copy_stands_in_for_unreachable_redis_under_stale_if_error(
        now, stale_if_error, usable):
    """A copy fresh until t=100 may be served while Redis is unreachable until
    stale_if_error past t=100, not a moment later."""
    assert copy_usable(100.0, now, stale_if_error) is usable
