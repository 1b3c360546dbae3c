"""An upstream's state as operators see it (shared/policy/status.py): table-driven."""

from __future__ import annotations

import dataclasses

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.status_page import duration_text, size_text, status_page
from shared.policy.status import (
    CacheMinute,
    Live,
    Upstream,
    cache_minute,
    described,
    hottest,
    last_hour,
    live_by_upstream,
    minute_of,
    quantile,
    ratio,
    rfc3339,
    upstream_state,
)
from shared.telemetry.status_metrics import status_metrics

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a minute's start


@pytest.mark.parametrize(
    ("failures", "paced_for", "state"),
    [
        (0, 0.0, "answering"),
        (2, 0.0, "answering"),  # below the threshold: one bad resource is not the upstream
        (3, 0.0, "failing"),
        (3, 50.0, "failing"),  # failing wins: nothing is spent while held
        (0, 10.0, "answering"),  # within the burst: refreshes still go at once
        (0, 10.5, "paced"),
        (2, 30.0, "paced"),
        (0, -5.0, "answering"),  # the bucket is full (its time in the past)
    ],
)
def test_state(failures, paced_for, state):
    assert upstream_state(failures, 3, paced_for, 10.0) == state


@pytest.mark.parametrize(
    ("t", "minute", "text"),
    [
        (NOW, 30_000_000, "2027-01-15T08:00:00.000Z"),
        (NOW + 59.999, 30_000_000, "2027-01-15T08:00:59.999Z"),
        (NOW + 60, 30_000_001, "2027-01-15T08:01:00.000Z"),
        (NOW - 0.5, 29_999_999, "2027-01-15T07:59:59.500Z"),
    ],
)
def test_minutes_and_times(t, minute, text):
    assert minute_of(t) == minute
    assert rfc3339(t) == text


def test_rfc3339_of_nothing_is_nothing():
    assert rfc3339(None) is None


def test_the_last_hour_is_sixty_minutes_ending_with_the_current_one():
    minutes = last_hour(NOW + 30)
    assert len(minutes) == 60
    assert minutes[-1] == minute_of(NOW + 30)
    assert minutes[0] == minute_of(NOW + 30) - 59
    assert minutes == sorted(minutes)


UPSTREAM_OF = {"a:x:1": "a", "a:x:2": "a", "a:x:3": "a", "b:y:1": "b"}


@pytest.mark.parametrize(
    ("due", "fresh_until", "expected"),
    [
        # nothing live: no upstream listed
        ([], {}, {}),
        # due later, fresh: nothing overdue or stale (never negative)
        ([("a:x:1", NOW + 20)], {"a:x:1": NOW + 30}, {"a": Live(1, 0.0, 0.0, NOW)}),
        # the most overdue and the stalest of each upstream, counted per upstream
        ([("a:x:1", NOW - 5), ("a:x:2", NOW - 12), ("a:x:3", NOW + 1), ("b:y:1", NOW - 1)],
         {"a:x:1": NOW - 2, "a:x:2": NOW + 3, "a:x:3": NOW - 40, "b:y:1": NOW + 9},
         {"a": Live(3, 12.0, 40.0, NOW), "b": Live(1, 1.0, 0.0, NOW)}),
        # no entry stored yet (a first fetch under way): counted, not stale
        ([("a:x:1", NOW - 3)], {}, {"a": Live(1, 3.0, 0.0, NOW)}),
        # the stalest first and the most overdue first: the maxima kept, to the ms
        ([("a:x:1", NOW - 7.12345), ("a:x:2", NOW - 1)], {"a:x:1": NOW - 50.0014,
                                                          "a:x:2": NOW - 3},
         {"a": Live(2, 7.123, 50.001, NOW)}),
        # a resource whose kind left the catalogue: left out
        ([("gone:z:1", NOW - 99), ("b:y:1", NOW)], {"gone:z:1": NOW - 99},
         {"b": Live(1, 0.0, 0.0, NOW)}),
    ],
)
def test_live_by_upstream(due, fresh_until, expected):
    assert live_by_upstream(due, fresh_until, UPSTREAM_OF, NOW) == expected


FAILING = Upstream(failures=4, failing_since=NOW - 90, last_error="upstream_timeout: slow",
                   next_probe=NOW + 8, paced_for=-3.0, spent=(0,) * 58 + (5, 2),
                   remaining=4000, reset_at=NOW + 600)


def test_a_failing_upstream_described():
    row = described("c42", FAILING, Live(7, 4.5, 31.0, NOW - 10), 5000, 3, 10.0)
    assert row == {
        "upstream": "c42", "state": "failing", "failures": 4,
        "failing_since": "2027-01-15T07:58:30.000Z",
        "last_error": "upstream_timeout: slow",
        "next_probe": "2027-01-15T08:00:08.000Z",
        "budget": {"spent_last_hour": 7, "per_hour": 5000,
                   "by_minute": [0] * 58 + [5, 2], "paced_for_s": 0.0},
        "reported": {"remaining": 4000, "reset_at": "2027-01-15T08:10:00.000Z"},
        "live_resources": 7, "refresh_overdue_s": 4.5, "oldest_stale_s": 31.0,
        "live_as_of": "2027-01-15T07:59:50.000Z",
    }


def test_at_the_threshold_it_is_failing_and_figures_are_never_negative():
    """Exactly ``threshold`` failures: failing, with since when; the budget's lead and
    the overdue time to the millisecond, and 0 when the bucket is full or nothing is due."""
    row = described("c42", Upstream(failures=3, failing_since=NOW - 5, next_probe=NOW + 1,
                                    paced_for=12.34567), Live(1, -2.0, 0.0), 0, 3, 10.0)
    assert row["state"] == "failing" and row["failing_since"] == rfc3339(NOW - 5)
    assert row["next_probe"] == rfc3339(NOW + 1)
    assert row["budget"]["paced_for_s"] == 12.346
    assert row["refresh_overdue_s"] == 0.0


def test_below_the_threshold_no_failing_since_or_probe_is_shown():
    """Two failures in a row: counted and the last error shown, but not failing."""
    row = described("c42", Upstream(failures=2, failing_since=NOW - 5, last_error="e",
                                    next_probe=NOW + 1), Live(), 0, 3, 10.0)
    assert (row["state"], row["failures"], row["last_error"]) == ("answering", 2, "e")
    assert row["failing_since"] is None and row["next_probe"] is None
    assert row["budget"]["per_hour"] is None and row["reported"] is None


def test_status_gauges_follow_the_report():
    rows = [described("c42", FAILING, Live(7, 4.5, 31.0), 5000, 3, 10.0),
            described("github", Upstream(paced_for=60.0), Live(2, 0.0, 0.0), 0, 3, 10.0)]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in status_metrics(rows, 2, NOW - 1) for s in family.samples}

    def value(name: str, **labels: str) -> float | None:
        return samples.get((f"cachedproxy_{name}", tuple(sorted(labels.items()))))

    assert value("upstream_up", upstream="c42") == 0
    assert value("upstream_up", upstream="github") == 1
    assert value("upstream_state", upstream="github", state="paced") == 1
    assert value("upstream_state", upstream="github", state="answering") == 0
    assert value("upstream_failing_since_timestamp_seconds", upstream="c42") == NOW - 90
    assert value("upstream_failing_since_timestamp_seconds", upstream="github") is None
    assert value("upstream_spent_last_hour", upstream="c42") == 7
    assert value("upstream_budget_per_hour", upstream="c42") == 5000
    assert value("upstream_budget_per_hour", upstream="github") is None  # no limit
    assert value("upstream_reported_remaining", upstream="c42") == 4000
    assert value("upstream_live_resources", upstream="github") == 2
    assert value("upstream_refresh_overdue_seconds", upstream="c42") == 4.5
    assert value("upstream_oldest_stale_seconds", upstream="c42") == 31.0
    assert value("workers_alive") == 2
    assert value("beat_last_tick_timestamp_seconds") == NOW - 1


INF = float("inf")


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [], None),
        (0.5, [(1.0, 0.0), (INF, 0.0)], None),  # no observations
        # all in the first bucket: interpolated from 0
        (0.5, [(1.0, 10.0), (2.0, 10.0), (INF, 10.0)], 0.5),
        (0.99, [(1.0, 10.0), (2.0, 10.0), (INF, 10.0)], 0.99),
        # half below 1, half in (1, 2]: the median is the bucket boundary
        (0.5, [(1.0, 5.0), (2.0, 10.0), (INF, 10.0)], 1.0),
        (0.75, [(1.0, 5.0), (2.0, 10.0), (INF, 10.0)], 1.5),
        # a quantile in the +Inf bucket: the highest finite bound
        (0.99, [(1.0, 5.0), (2.0, 6.0), (INF, 10.0)], 2.0),
        # an empty bucket before the rank: skipped
        (0.5, [(1.0, 0.0), (5.0, 0.0), (10.0, 4.0), (INF, 4.0)], 7.5),
        # one observation is enough; all of them past the last bound: that bound
        (0.5, [(1.0, 1.0), (INF, 1.0)], 0.5),
        (0.5, [(1.0, 0.0), (INF, 4.0)], 1.0),
    ],
)
def test_quantile_from_buckets(q, buckets, expected):
    """As Prometheus's histogram_quantile."""
    assert quantile(q, buckets) == expected


@pytest.mark.parametrize(
    ("counts", "minute"),
    [
        ({}, CacheMinute()),
        ({"a|hit": 7, "a|local": 1, "b|hit": 2}, CacheMinute(10, 10, 0, 0)),
        ({"a|stale": 2, "a|stale_if_error": 1, "a|miss": 3, "b|collapsed": 4,
          "a|negative": 5, "a|error": 6}, CacheMinute(21, 0, 3, 7)),
        ({"read|through|hit": 2}, CacheMinute(2, 2, 0, 0)),  # the outcome is the last part
    ],
)
def test_a_minute_of_outcomes(counts, minute):
    assert cache_minute(counts) == minute


def test_the_hottest_views_over_the_hour():
    minutes = [{"c|hit": 6, "b|miss": 1}, {}, {"b|hit": 4, "a|hit": 5, "a|stale": 1}]
    assert hottest(minutes, 2) == [("a", 6), ("c", 6)]  # ties by name
    assert hottest(minutes, 10) == [("a", 6), ("c", 6), ("b", 5)]
    assert hottest([], 3) == []


@pytest.mark.parametrize(("part", "whole", "expected"), [(1, 4, 0.25), (0, 3, 0.0), (0, 0, None)])
def test_ratio(part, whole, expected):
    assert ratio(part, whole) == expected


def overview_of(row: dict) -> dict:
    row = {**row, "checks": {"change": 1, "no_change": 2},
           "refresh_lag_s": {"p50": 0.05, "p99": None, "refreshes": 3}}
    return {"at": "2027-01-15T08:00:00.000Z", "upstreams": [row],
            "cache": {"answers_last_hour": 10, "hit_ratio": 0.9, "stale_ratio": 0.0,
                      "misses_last_hour": 1,
                      "by_minute": [{"answers": 0, "hits": 0, "stale": 0, "misses": 0}] * 59
                      + [{"answers": 10, "hits": 9, "stale": 0, "misses": 1}],
                      "hottest_views": [{"view": "<b>v</b>", "answers": 10}]},
            "redis": {"used_memory_bytes": 2_000_000, "max_memory_bytes": 0,
                      "evicted_keys": 0},
            "health": {"redis": {"ok": True}, "workers": {"ok": True, "seen": ["w@h"]},
                       "beat": {"ok": False, "last_tick_s_ago": None}}}


def test_the_page_escapes_what_it_did_not_write_and_shows_the_state():
    """Upstream errors and view names are text, never markup; the failing state says
    since when; no style or script runs without the response's nonce."""
    row = described("c42", dataclasses.replace(FAILING, last_error="<script>x</script>"),
                    Live(), 0, 3, 10.0)
    html = status_page(overview_of(row), "n0nce")
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<b>v</b>" not in html and "&lt;b&gt;v&lt;/b&gt;" in html
    assert 'data-upstream="c42" data-state="failing"' in html
    assert "failing since <time datetime=\"2027-01-15T07:58:30.000Z\">07:58:30 UTC" in html
    assert html.count("<script") == 1 and '<script nonce="n0nce">' in html
    assert html.count("<style") == 1 and '<style nonce="n0nce">' in html
    assert " style=" not in html  # the policy allows no style attribute
    assert 'data-card="beat"' in html and "never ticked" in html
    assert "p50 50 ms, p99 — (3 refreshes)" in html


def test_counts_a_flush_could_not_write_are_kept_for_the_next():
    """Redis away: the tally keeps what it counted (and goes on counting)."""
    from api.tally import Tally
    from launcher.services import free_port
    from shared.store.keys import Keys

    away = redis.Redis(port=free_port(), socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    tally = Tally(away, Keys("t"), lambda: NOW)
    tally.count("v", "hit")
    tally.count("v", "hit")
    tally.flush()
    tally.count("v", "miss")
    assert tally._counts == {("v", "hit"): 2, ("v", "miss"): 1}


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 kB"),
                                         (2_000_000, "1.9 MB"), (256 * 1024**2, "256.0 MB"),
                                         (5 * 1024**3, "5.0 GB")])
def test_sizes_on_the_page(n, text):
    assert size_text(n) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (0.0, "0 ms"), (0.0504, "50 ms"),
                                               (1.0, "1.0 s"), (119.9, "119.9 s"),
                                               (120.0, "2 min"), (3600.0, "60 min")])
def test_durations_on_the_page(seconds, text):
    assert duration_text(seconds) == text
