"""An upstream's own caching headers, read as a shared cache reads them (RFC 9111), for
an upstream whose catalogue entry follows them (``freshness = "upstream"``)."""

from __future__ import annotations

import pytest

from shared.policy.http import UpstreamFreshness, bounded, upstream_freshness

DATE = "Fri, 04 Dec 2026 12:00:00 GMT"


@pytest.mark.parametrize(("cache_control", "expires", "date", "age", "expected"), [
    (None, None, None, None, UpstreamFreshness()),
    ("max-age=60", None, None, None, UpstreamFreshness(max_age=60)),
    ("public, max-age=60, s-maxage=300", None, None, None, UpstreamFreshness(max_age=300)),
    ("s-maxage=5, max-age=60", None, None, None, UpstreamFreshness(max_age=5)),
    ("MAX-AGE=60", None, None, None, UpstreamFreshness(max_age=60)),
    ('max-age="60"', None, None, None, UpstreamFreshness(max_age=60)),
    ("max-age=60", None, None, "20", UpstreamFreshness(max_age=40)),
    ("max-age=60", None, None, "90", UpstreamFreshness(max_age=0)),
    ("max-age=abc", None, None, None, UpstreamFreshness()),  # malformed: ignored
    ("max-age=-5", None, None, None, UpstreamFreshness()),
    ("no-cache", None, None, None, UpstreamFreshness(max_age=0)),
    ("max-age=60, no-cache", None, None, None, UpstreamFreshness(max_age=0)),
    ("no-store", None, None, None, UpstreamFreshness(store=False)),
    ("private, max-age=60, s-maxage=60", None, None, None, UpstreamFreshness(store=False)),
    ("max-age=60, No-Store", None, None, None, UpstreamFreshness(store=False)),
    (None, "Fri, 04 Dec 2026 12:10:00 GMT", DATE, None, UpstreamFreshness(max_age=600)),
    (None, "Fri, 04 Dec 2026 11:00:00 GMT", DATE, None, UpstreamFreshness(max_age=0)),
    (None, "0", DATE, None, UpstreamFreshness(max_age=0)),  # invalid: already expired
    (None, "Fri, 04 Dec 2026 12:10:00 GMT", None, None, UpstreamFreshness()),  # no Date
    (None, "Fri, 04 Dec 2026 12:10:00 GMT", "yesterday", None, UpstreamFreshness()),
    ("max-age=30", "Fri, 04 Dec 2026 12:10:00 GMT", DATE, None, UpstreamFreshness(max_age=30)),
])
def test_what_an_answer_says_of_its_own_freshness(cache_control, expires, date, age,
                                                  expected):
    assert upstream_freshness(cache_control, expires, date, age) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, 300), (0, 10), (5, 10), (60, 60), (86400, 3600),
])
def test_the_upstream_s_lifetime_within_the_configured_bounds(value, expected):
    assert bounded(value, 10, 3600, otherwise=300) == expected
