"""Refresh-ahead timing rules and the API's read throttle, without Redis."""

import pytest

from shared.errors import (
    FetchTimeout,
    NotFound,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from shared.policy.timing import (
    ReadThrottle,
    handed_back_at,
    next_refresh,
    read_period,
    recently_checked,
    recovery_plan,
    retry_delay,
    upstream_failing,
)


@pytest.mark.parametrize("u", [0.0, 0.5, 0.999])
def test_next_refresh_is_within_the_last_tenth_before_ttl_times_ratio(u):
    """Jitter only moves a refresh earlier, by at most 10 % of the refresh period."""
    at = next_refresh(checked_at=1000.0, ttl=100, ratio=0.8, rng=lambda: u)
    assert 1000 + 72 < at <= 1000 + 80
    assert at == pytest.approx(1000 + 80 * (1 - 0.1 * u))


def test_jitter_spreads_resources_fetched_together():
    """Two resources fetched at the same moment get different refresh times."""
    values = iter([0.1, 0.9])
    first = next_refresh(0.0, 100, 0.8, rng=lambda: next(values))
    second = next_refresh(0.0, 100, 0.8, rng=lambda: next(values))
    assert abs(first - second) > 5


def test_recently_checked_is_half_a_refresh_period():
    """A refresh of something validated under half a period ago is skipped."""
    assert recently_checked(checked_at=100.0, now=139.9, ttl=100, ratio=0.8)
    assert not recently_checked(checked_at=100.0, now=140.0, ttl=100, ratio=0.8)


def test_retry_delay_doubles_up_to_the_cap():
    """Backoff is base, 2×base, 4×base ... never above the cap."""
    assert [retry_delay(n, base=2, cap=30) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_retry_delay_below_a_second():
    """Sub-second back-off (short TTLs) is kept as configured; nothing rounds it up."""
    assert [retry_delay(n, base=0.25, cap=1) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1, 1]


def test_retry_after_wins_when_longer():
    """A 429's Retry-After is honoured when it asks for more than the backoff."""
    assert retry_delay(1, base=2, cap=30, retry_after=120) == 120
    assert retry_delay(4, base=2, cap=30, retry_after=1) == 16


def test_reads_are_recorded_at_least_four_times_per_idle_timeout():
    """Once per refresh period, but often enough that idle detection stays accurate."""
    assert read_period(ttl=252, ratio=0.8, idle_timeout=1800) == pytest.approx(201.6)
    assert read_period(ttl=2, ratio=0.8, idle_timeout=3) == 0.75


def test_read_throttle_records_each_resource_once_per_period():
    """A process writes a read of a resource at most once per period."""
    throttle = ReadThrottle()
    assert throttle.due(["a", "b"], 0, 10) == ["a", "b"]
    assert throttle.due(["a", "b"], 9.9, 10) == []
    assert throttle.due(["a", "c"], 5, 10) == ["c"]
    assert throttle.due(["a", "b", "c"], 10, 10) == ["a", "b"]


def test_read_throttle_stays_bounded_forgetting_what_is_due_first():
    throttle = ReadThrottle(size=3)
    assert throttle.due(["a", "b"], 0.0, 10) == ["a", "b"]
    assert throttle.due(["c"], 5.0, 10) == ["c"]
    assert throttle.due(["d"], 12.0, 10) == ["d"]  # a and b were due: forgotten, not c
    assert throttle.due(["c"], 12.0, 10) == [] and throttle.due(["a"], 12.0, 10) == ["a"]
    for n in range(10):  # none due: all forgotten at the bound, never more than it
        throttle.due([f"x{n}"], 13.0, 10)
        assert len(throttle._next) <= 3
    assert throttle.due(["x9"], 13.0, 10) == []


def test_read_throttle_says_whether_a_read_is_pending_without_noting_it():
    throttle = ReadThrottle()
    assert throttle.pending(["a"], now=0) and throttle.pending(["a"], now=0)
    throttle.due(["a"], 0, 10)
    assert not throttle.pending(["a"], now=9.9)
    assert throttle.pending(["a", "b"], now=9.9)  # b never recorded
    assert throttle.pending(["a"], now=10)


def test_read_throttle_keeps_each_resource_s_own_period():
    """Views with different TTLs record their reads each on its own period: one view's
    requests never change when another's reads come due."""
    throttle = ReadThrottle()
    assert throttle.due(["slow"], 0, 100) == ["slow"]
    assert throttle.due(["fast"], 0, 1) == ["fast"]
    assert throttle.due(["slow", "fast"], 1, 1) == ["fast"]
    assert throttle.due(["slow", "fast"], 99, 1) == ["fast"]
    assert throttle.due(["slow"], 100, 100) == ["slow"]


@pytest.mark.parametrize(
    ("error", "failing"),
    [
        (UpstreamError("refused"), True),  # no answer at all
        (UpstreamTimeout("slow"), True),
        (UpstreamError("5xx", upstream_status=500), True),
        (UpstreamError("5xx", upstream_status=503), True),
        (UpstreamError("limit", upstream_status=429), True),
        (UpstreamError("token", upstream_status=401), True),
        (UpstreamError("token", upstream_status=403), True),
        (UpstreamError("bad body", upstream_status=200), False),  # one resource's body
        (UpstreamError("teapot", upstream_status=418), False),
        (NotFound("gone", upstream_status=404), False),
        (FetchTimeout("waited"), False),
        (StoreUnavailable("redis"), False),
    ],
)
def test_upstream_failing(error, failing):
    """Unreachable, slow, 5xx, 429, 401/403 concern the whole upstream; a bad body or
    another 4xx concerns one resource; our own failures are not the upstream's."""
    assert upstream_failing(error) is failing


@pytest.mark.parametrize(
    ("count", "per_second", "first", "last"),
    [
        (1, 200, 0.0, 0.0),
        (4, 200, 0.0, 0.75),  # few: spread over the least second
        (400, 200, 0.0, 1.995),  # many: no more than per_second in any second
        (1000, 100, 0.0, 9.99),
    ],
)
def test_recovery_plan_spreads_held_resources(count, per_second, first, last):
    """Held resources come back spread over at least a second, at most per_second a
    second, each once."""
    resources = [f"r:{i:04}" for i in range(count)]
    plan = recovery_plan(list(reversed(resources)), 100.0, per_second)
    assert [r for r, _ in plan] == resources
    assert plan[0][1] == pytest.approx(100.0 + first)
    assert plan[-1][1] == pytest.approx(100.0 + last)
    assert recovery_plan([], 100.0, per_second) == []


@pytest.mark.parametrize(("count", "queued", "per_second", "after", "expected"), [
    (0, 10, 5.0, 0.0, []),
    # In turn behind the 10 queued, at 5 a second: the 11th, 12th, 13th finish then.
    (3, 10, 5.0, 0.0, [1002.2, 1002.4, 1002.6]),
    # Behind those handed back before, if they come due later than the backlog ends.
    (2, 10, 5.0, 1010.0, [1010.2, 1010.4]),
    (2, 10, 5.0, 990.0, [1002.2, 1002.4]),
    # Never sooner than a second away, even with nothing queued.
    (2, 0, 50.0, 0.0, [1001.0, 1001.02]),
    # Nothing finished lately: one a second is assumed, not a division by zero.
    (2, 3, 0.0, 0.0, [1004.0, 1005.0]),
])
def test_refreshes_handed_back_come_due_in_turn_at_the_rate_the_upstream_keeps(
        count, queued, per_second, after, expected):
    assert handed_back_at(count, queued, per_second, 1000.0, after) == pytest.approx(expected)
