"""Freshness within a budget, on a real stack: when an upstream's budget cannot pay for
every TTL, beat's plan gives each live resource its own TTL within [min_ttl, max_age]; a
refresh follows it, and answers tell it (max-age, Age); the admin API and /metrics show
the plan. While the budget pays for every TTL, the TTL stays."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import redis
import requests

from shared.store.entries import EntryStore
from shared.store.entry import fetched, keep_until
from shared.store.freshness import FreshnessStore, Lengthened
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from tests.harness import Demo, Stack
from tests.helpers import PREFIX, VIEW, eventually, get, make_live, scrape

EVENTS = ["team-standup", "quiet-evening"]  # one page of subscribers each
TOKEN = "plan-test-token"


def _max_age(response: requests.Response) -> int:
    match = re.search(r"max-age=(\d+)", response.headers["Cache-Control"])
    assert match, response.headers
    return int(match.group(1))


def _plans(api: str) -> dict:
    r = requests.get(f"{api}/admin/freshness", timeout=10,
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return r.json()["upstreams"]


def _stack(env: dict[str, str], tmp_path: Path, budget: int) -> Stack:
    return Stack({**env, "CACHE_TTL": "4", "C42_BUDGET_PER_HOUR": str(budget),
                  "C42_MAX_AGE": "40", "REFRESH_PLAN_INTERVAL": "1",  # its own max_age
                  "ADMIN_TOKEN": TOKEN}, tmp_path)


def _started(stack: Stack) -> tuple[str, redis.Redis]:
    """Redis, a worker, beat and the API of ``stack``, with both views read and live:
    the API's URL and a client of the Redis."""
    stack.redis_server()
    stack.worker(concurrency=4)
    stack.beat()
    api = stack.api()
    for event_id in EVENTS:
        assert get(f"{api}{VIEW}/{event_id}/").status_code == 200
    make_live(stack.store, PREFIX, *EVENTS)
    return api, stack.store


def test_a_short_budget_plans_ttls_that_answers_tell(env: dict[str, str], demo: Demo,
                                                      tmp_path: Path) -> None:
    """A budget of one request a second cannot pay for 4 resources every 3.2 s
    (CACHE_TTL=4, 1.25 a second): the plan comes on, and as checks find nothing changed
    the resources' TTLs grow past 4 s. An answer's max-age then says so; no answer
    claims more than c42's own max_age (C42_MAX_AGE: 40 s) nor is older."""
    with _stack(env, tmp_path, budget=3600) as stack:
        api, store = _started(stack)
        eventually(lambda: _plans(api).get("c42", {}).get("active", False), 30,
                   "the c42 plan on")
        plan = _plans(api)["c42"]
        assert plan["budget_per_s"] == 1.0 and plan["resources"] == 4
        assert plan["over_budget"] is False  # four resources on max_age: 0.1 a second
        assert 0 < plan["requests_per_s"] <= 0.9 and 0 < plan["predicted_freshness"] <= 1
        # Read much, the first view keeps about the TTL (min_ttl: the TTL); the second,
        # read once, gets a longer one, and after its next refresh is fresh that long.
        keys = Keys(PREFIX)
        quiet = [f"c42:{kind}:{EVENTS[1]}" for kind in ("event", "subscriptions")]

        def lifetime(resource: str) -> float:
            entry = store.hmget(keys.entry(resource), ["fresh_until", "checked_at"])
            return float(entry[0]) - float(entry[1])

        def read_hot_and_look() -> bool:
            assert get(f"{api}{VIEW}/{EVENTS[0]}/").status_code == 200
            planned = store.hmget(keys.planned(), [quiet[0], f"c42:event:{EVENTS[0]}"])
            return (all(lifetime(r) > 5 for r in quiet)
                    and None not in planned and float(planned[0]) > float(planned[1]))

        eventually(read_hot_and_look, 40, "the quiet view's parts fresh for longer than the "
                   "TTL, and longer than the hot view's")
        planned = {k: float(v) for k, v in store.hgetall(keys.planned()).items()
                   if k.startswith("c42:")}
        assert set(planned) >= {f"c42:{kind}:{e}" for e in EVENTS
                                for kind in ("event", "subscriptions")}
        assert all(4 <= ttl <= 40 for ttl in planned.values())
        # The answer tells the entry's own clock: fresh for its planned TTL from its
        # check (max-age + Age), never more than max_age.
        r = get(f"{api}{VIEW}/{EVENTS[1]}/")
        assert r.status_code == 200
        told = _max_age(r) + int(r.headers["Age"])
        assert 5 <= told <= 40, r.headers
        assert f"ttl={_max_age(r)}" in r.headers["Cache-Status"]
        metrics = scrape(api)
        assert metrics[("cachedproxy_plan_active", (("upstream", "c42"),))] == 1
        assert metrics[("cachedproxy_plan_budget_per_second", (("upstream", "c42"),))] == 1
        assert metrics[("cachedproxy_check_requests_total",
                        (("found", "no_change"), ("upstream", "c42")))] > 0
        assert ("cachedproxy_change_interval_seconds",
                (("quantile", "0.5"), ("upstream", "c42"))) in metrics


def test_a_budget_that_pays_for_every_ttl_keeps_it(env: dict[str, str], demo: Demo,
                                                   tmp_path: Path) -> None:
    """A budget of ten requests a second pays for 4 resources every 3.2 s: the plan
    stays off, nothing gets a TTL of its own, answers stay within the TTL."""
    with _stack(env, tmp_path, budget=36000) as stack:
        api, store = _started(stack)
        eventually(lambda: _plans(api).get("c42", {}).get("resources") == 4, 30,
                   "a c42 plan of the four live resources")
        plan = _plans(api)["c42"]
        assert plan["active"] is False and plan["budget_per_s"] == 10.0
        assert plan["ttl_s"] == {"0.1": 4.0, "0.5": 4.0, "0.9": 4.0}
        assert store.hlen(Keys(PREFIX).planned()) == 0
        for _ in range(20):
            r = get(f"{api}{VIEW}/{EVENTS[1]}/")
            assert r.status_code == 200 and _max_age(r) <= 4
        assert scrape(api)[("cachedproxy_plan_active", (("upstream", "c42"),))] == 0


def test_a_refresh_moved_later_takes_its_datas_freshness_along(store: redis.Redis) -> None:
    """A plan that lengthens a resource's TTL moves its next refresh later and its
    entry's freshness (and key expiry) with it, in one script: else its data would go
    stale before the refresh and reads would ask for one of their own. Not for an entry
    refreshed since the plan's check, and never earlier."""
    keys, now = Keys(PREFIX), time.time()
    entries, schedule = EntryStore(store, keys), Schedule(store, keys)
    plans = FreshnessStore(store, keys)
    names = ["c42:event:lengthened", "c42:event:refreshed-since", "c42:event:already-later"]
    for name in names:
        entry = fetched({"id": name}, (), now - 10, 4)  # checked 10 s ago, TTL 4 s
        entries.save(name, entry, keep_until(entry, 100))
        schedule.succeeded(name, now - 10 + 3.2)
    schedule.succeeded(names[2], now + 500)
    plans.apply("lengthening", {}, [], {}, {
        names[0]: Lengthened(now - 10, now + 30, now + 20),
        names[1]: Lengthened(now - 11, now + 30, now + 20),  # not the stored check
        names[2]: Lengthened(now - 10, now + 30, now + 20),
    }, 100, {"active": True})  # a summary no plan writes: /metrics leaves it out
    assert plans.summaries()["lengthening"] == {"active": True}
    fresh = [float(store.hget(keys.entry(n), "fresh_until")) for n in names]
    due = {k.decode() if isinstance(k, bytes) else k: at
           for k, at in store.zrange(keys.schedule(), 0, -1, withscores=True)}
    assert fresh[0] == pytest.approx(now + 30, abs=0.01) and fresh[1] == pytest.approx(now - 6)
    assert due[names[0]] == pytest.approx((now + 20) * 1000, abs=1)
    assert due[names[1]] == pytest.approx((now - 6.8) * 1000, abs=1)
    assert due[names[2]] == pytest.approx((now + 500) * 1000, abs=1)  # not earlier
    expires = store.pexpiretime(keys.entry(names[0])) / 1000
    assert expires == pytest.approx(now + 130, abs=0.01)
    for name in names:
        schedule.drop(name)
        store.delete(keys.entry(name))
    store.hdel(keys.plans(), "lengthening")
