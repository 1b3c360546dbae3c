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
from shared.policy.fetching import (
    AfterFailure,
    Backoff,
    Cause,
    after_failure,
    fetch_cost,
    retry_at,
    skip_as_recent,
    storable,
)
from shared.policy.serving import (
    ReadAction,
    Staleness,
    Windows,
    copy_usable,
    read_action,
    staleness,
)
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
    ("error", "failures", "retry_after", "decision"),
    [
        (NotFound("gone", upstream_status=404), 0, None, AfterFailure(not_found=True)),
        (UpstreamError("5xx", upstream_status=503), 1, None,
         AfterFailure(False, retry_in=2, upstream_failed=True)),
        (UpstreamError("5xx", upstream_status=500), 3, None,
         AfterFailure(False, retry_in=8, upstream_failed=True)),
        (UpstreamTimeout("slow"), 20, None,
         AfterFailure(False, retry_in=300, upstream_failed=True)),
        (UpstreamError("429", upstream_status=429), 1, 120.0,
         AfterFailure(False, retry_in=120, upstream_failed=True)),
        (UpstreamError("bad body", upstream_status=200), 2, None,
         AfterFailure(False, retry_in=4, upstream_failed=False)),
        (FetchTimeout("interrupted"), 1, None,
         AfterFailure(False, retry_in=2, upstream_failed=False)),
        (StoreUnavailable("redis"), 1, None,
         AfterFailure(False, retry_in=2, upstream_failed=False)),
    ],
)
def test_after_failure(error, failures, retry_after, decision):
    """A 404 is an answer (remembered, unscheduled), not a failure; failures keep the
    data and retry after a back-off that is never 0, doubles, is capped, and honours a
    longer Retry-After."""
    assert after_failure(error, failures, BACKOFF, retry_after) == decision


@pytest.mark.parametrize(
    ("cause", "status", "checked_ago", "skip"),
    [
        (Cause.SCHEDULED, 200, 10.0, True),  # validated less than half a period (50 s) ago
        (Cause.SCHEDULED, 200, 49.9, True),
        (Cause.SCHEDULED, 200, 50.0, False),
        (Cause.SCHEDULED, 404, 10.0, False),  # a remembered 404 is asked again when due
        (Cause.SCHEDULED, None, 10.0, False),
        (Cause.MISS, 200, 10.0, False),  # a client waits: never skipped
        (Cause.BACKGROUND, 200, 10.0, False),
        (Cause.ON_DEMAND, 200, 10.0, False),  # the operator asked for it now
    ],
)
def test_only_a_scheduled_refresh_of_data_just_validated_is_skipped(cause, status,
                                                                    checked_ago, skip):
    """ttl 125 × ratio 0.8: a refresh period of 100 s."""
    assert skip_as_recent(cause, status, 1000.0 - checked_ago, 1000.0, 125, 0.8) is skip


@pytest.mark.parametrize(
    ("cause", "ahead"),
    [(Cause.MISS, False), (Cause.BACKGROUND, True), (Cause.SCHEDULED, True),
     (Cause.ON_DEMAND, False)],
)
def test_fetches_no_client_waits_for_go_ahead(cause, ahead):
    """Scheduled refreshes and background fetches are paced and held; a miss and an
    operator's refresh spend from the misses' share instead."""
    assert cause.ahead is ahead


@pytest.mark.parametrize(("validators", "cost"), [(None, 1.0), (0, 1.0), (1, 1.0), (3, 3.0)])
def test_a_fetch_costs_a_request_per_page_stored_and_at_least_one(validators, cost):
    assert fetch_cost(validators) == cost


@pytest.mark.parametrize(("size", "ok"), [(0, True), (100, True), (101, False)])
def test_data_over_the_entry_limit_is_not_stored(size, ok):
    assert storable(size, 100) is ok


@pytest.mark.parametrize(
    ("probe_at", "retry_in", "at"),
    [(None, 8.0, 1008.0), (1030.0, 8.0, 1030.0), (None, None, 1000.0), (1000.5, None, 1000.5)],
)
def test_a_failed_resource_is_retried_as_its_upstream_s_probe_or_after_its_back_off(
        probe_at, retry_in, at):
    assert retry_at(1000.0, probe_at, retry_in) == at


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
