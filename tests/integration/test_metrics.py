"""/metrics: numbers that agree with what was done, across API and worker processes."""

from __future__ import annotations

import time

from shared.store.keys import Keys
from shared.store.status import store_live
from shared.upstreams.registry import upstream_of
from tests.helpers import PREFIX, VIEW, expire, get, make_live, scrape


def delta(before, after, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_outcomes_and_upstream_calls(api, demo, store):
    """Hits, misses and upstream requests (304s apart) in /metrics agree with what was
    done, summed over the API's server processes and taken from the worker via Redis."""
    before = scrape(api)
    assert get(f"{api}{VIEW}/launch-party/").status_code == 200  # miss: 1 + 3 upstream
    for _ in range(20):  # hits, spread over both server processes
        assert get(f"{api}{VIEW}/launch-party/").status_code == 200
    assert get(f"{api}{VIEW}/no-such-one/").status_code == 404
    assert get(f"{api}{VIEW}/no-such-one/").status_code == 404
    after = scrape(api)
    route = "/events-with-subscriptions/<id>/"
    assert delta(before, after, "cachedproxy_http_requests_total",
                 route=route, method="GET", status="200") == 21
    assert delta(before, after, "cachedproxy_http_requests_total",
                 route=route, method="GET", status="404") == 2
    assert delta(before, after, "cachedproxy_cache_outcomes_total",
                 view="events-with-subscriptions", outcome="hit") == 20
    assert delta(before, after, "cachedproxy_cache_outcomes_total",
                 view="events-with-subscriptions", outcome="miss") == 2
    assert delta(before, after, "cachedproxy_cache_outcomes_total",
                 view="events-with-subscriptions", outcome="negative") == 1
    assert delta(before, after, "cachedproxy_upstream_requests_total",
                 kind="c42:event", status="200") == 1
    # 3 pages for launch-party, and the unknown event's one (empty) page
    assert delta(before, after, "cachedproxy_upstream_requests_total",
                 kind="c42:subscriptions", status="200") == 4
    assert delta(before, after, "cachedproxy_upstream_requests_total",
                 kind="c42:event", status="404") == 1
    assert delta(before, after, "cachedproxy_http_request_duration_seconds_count",
                 route=route) == 23
    # every upstream request is spent from the upstream's budget: counted, and in the hour
    assert delta(before, after, "cachedproxy_upstream_spent_requests_total", upstream="c42") == 6
    assert delta(before, after, "cachedproxy_upstream_spent_last_hour", upstream="c42") == 6


def test_revalidation_counts_304_apart(api, demo, store):
    """A conditional refresh shows up as upstream 304s, not 200s."""

    get(f"{api}{VIEW}/team-standup/")
    before = scrape(api)
    expire(store, "team-standup")
    get(f"{api}{VIEW}/team-standup/")
    after = scrape(api)
    assert delta(before, after, "cachedproxy_upstream_requests_total",
                 kind="c42:event", status="304") == 1
    assert delta(before, after, "cachedproxy_upstream_requests_total",
                 kind="c42:event", status="200") == 0


def test_gauges_for_live_set_entries_and_queues(api, store):
    """Live-set size, cached entries and their memory per upstream, queue lengths and
    Redis's memory are exported."""
    get(f"{api}{VIEW}/team-standup/")
    make_live(store, PREFIX, "team-standup")  # its second read would: not left to timing
    store_live(store, Keys(PREFIX), ["c42", "github"], upstream_of, time.time())  # the plan task
    samples = scrape(api)
    store.delete(Keys(PREFIX).live_status())
    entries = list(store.scan_iter(Keys(PREFIX).pattern("entry")))
    assert samples[("cachedproxy_live_resources", ())] >= 2
    assert len(entries) == 2  # the event and its subscriptions
    assert samples[("cachedproxy_cache_entries", (("upstream", "c42"),))] == 2
    assert samples[("cachedproxy_cache_bytes", (("upstream", "c42"),))] == sum(
        store.memory_usage(key, samples=0) for key in entries)
    assert ("cachedproxy_cache_entries", (("upstream", "github"),)) not in samples
    assert ("cachedproxy_queue_length", (("queue", "fetch"),)) in samples
    assert ("cachedproxy_queue_length", (("queue", "refresh"),)) in samples
    assert samples[("cachedproxy_redis_used_memory_bytes", ())] > 100_000
    assert samples[("cachedproxy_redis_max_memory_bytes", ())] == 0  # the tests' Redis
    assert samples[("cachedproxy_redis_evicted_keys_total", ())] == 0
    c42, github = (("upstream", "c42"),), (("upstream", "github"),)
    assert samples[("cachedproxy_upstream_up", c42)] == 1
    assert samples[("cachedproxy_upstream_state", (("state", "answering"), *c42))] == 1
    assert samples[("cachedproxy_upstream_live_resources", c42)] >= 2
    assert samples[("cachedproxy_upstream_oldest_stale_seconds", c42)] == 0
    assert ("cachedproxy_upstream_up", github) in samples  # every upstream, used or not
    assert samples[("cachedproxy_workers_alive", ())] >= 1  # the session's worker
