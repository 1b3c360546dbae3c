"""Refresh ahead: beat ticks, workers refresh live resources before they expire.

These tests run their own stack: a Redis they may flush, a worker and beat with a 2 s TTL
and a 0.25 s tick, and an API reading from it; the demo upstream is the session's.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from shared.config.settings import Settings, load_settings
from shared.store.entry import Entry
from shared.store.flights import FETCH_TIME_LIMIT
from shared.store.keys import Keys
from tests.harness import Demo, Stack
from tests.helpers import VIEW, eventually, expected, scrape

TTL = 2.0
RATIO = 0.8
TICK = 0.25
IDLE = 3.0
PROBE_MAX = 1.0
PINNED = "quiet-evening"
KEYS = Keys("cprefresh")


@dataclass
class Refreshing:
    """The module's own system: its processes, and the API reading from it."""

    api: str
    processes: Stack
    settings: Settings
    worker: subprocess.Popen | None = None

    @property
    def store(self) -> redis.Redis:
        return self.processes.store

    def get(self, event_id: str) -> requests.Response:
        return requests.get(f"{self.api}{VIEW}/{event_id}/", timeout=15)

    def entry(self, resource: str) -> Entry | None:
        return Entry.from_fields(self.store.hgetall(KEYS.entry(resource)))

    def scheduled(self, resource: str) -> bool:
        return self.store.zscore(KEYS.schedule(), resource) is not None

    def read_again(self, event_id: str) -> None:
        """Read a view until its resources are live: the read after the process's read
        period is recorded as its second, which admits it."""
        eventually(lambda: self.get(event_id).ok and self.scheduled(f"c42:event:{event_id}"),
                   IDLE, f"{event_id} live")

    def start_worker(self, name: str) -> None:
        self.worker = self.processes.worker(name)

    def stop_worker(self) -> None:
        """Stop the worker as an operator does (SIGTERM): a warm shutdown, which waits
        for the fetches it runs (each bounded by its time limit)."""
        if self.worker is not None:
            self.processes.stop(self.worker, timeout=FETCH_TIME_LIMIT)
            # Killed instead, it would stay listed as alive for WORKER_GONE_AFTER.
            assert self.worker.returncode in (0, -signal.SIGTERM), self.worker.returncode
        self.worker = None


@pytest.fixture(scope="module")
def stack(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Refreshing]:
    with Stack({
        **env,
        "KEY_PREFIX": KEYS.prefix,
        "CACHE_TTL": str(int(TTL)),
        "GITHUB_TTL": "3600",  # the GitHub organisation prefetched once, out of the way
        "REFRESH_RATIO": str(RATIO),
        "REFRESH_TICK_INTERVAL": str(TICK),
        "REFRESH_IDLE_TIMEOUT": str(int(IDLE)),
        "REFRESH_RETRY_BASE": "0.5",
        "REFRESH_RETRY_MAX": "2",
        "REFRESH_PROBE_MAX": str(PROBE_MAX),
        "CACHE_STALE_WHILE_REVALIDATE": "1",
        "C42_PREFETCH": PINNED,
    }, tmp_path_factory.mktemp("refresh")) as processes:
        processes.redis_server()
        settings = load_settings(processes.env)
        server = threaded_wsgi_server(app_from_settings(settings), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack = Refreshing(f"http://127.0.0.1:{server.server_address[1]}", processes,
                           settings)
        stack.start_worker("worker")
        processes.beat()
        try:
            yield stack
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture(autouse=True)
def a_worker_runs(stack: Refreshing) -> None:
    """Each test starts with a worker, whatever a test stopped before it failed."""
    if stack.worker is None:
        stack.start_worker("worker-next")


@pytest.fixture(autouse=True)
def forget_unpinned(stack: Refreshing) -> None:
    """Each test starts with nothing cached or scheduled but the configured event."""
    for key in stack.store.scan_iter(KEYS.pattern()):
        if PINNED not in key and key.split(":")[1] in {"entry", "result"}:
            stack.store.delete(key)
        if key.split(":")[1] in {"upstream", "held"}:
            stack.store.delete(key)
    for key in (KEYS.schedule(), KEYS.reads()):
        for member in stack.store.zrange(key, 0, -1):
            if PINNED not in member:
                stack.store.zrem(key, member)
    stack.store.delete(KEYS.failures(), KEYS.results())
    for resource in stack.store.hkeys(KEYS.locks()):
        if PINNED not in resource:
            stack.store.hdel(KEYS.locks(), resource)


def read_steadily(stack: Refreshing, event_id: str, seconds: float, every: float = 0.2
                  ) -> list[requests.Response]:
    """A client reading a view every ``every`` seconds for ``seconds``."""
    responses = []
    start = time.monotonic()
    for i in range(int(seconds / every)):
        responses.append(stack.get(event_id))
        time.sleep(max(start + (i + 1) * every - time.monotonic(), 0))
    return responses


def test_popular_view_is_never_a_miss_and_costs_only_304s(stack: Refreshing, demo: Demo):
    """Read every 200 ms for 10 TTL periods: after the first request every answer is a
    hit, and upstream sees only conditional requests, answered 304."""
    responses = read_steadily(stack, "launch-party", seconds=10 * TTL)
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json() == expected("launch-party") for r in responses)
    assert "fwd=miss" in responses[0].headers["Cache-Status"]
    misses = [r.headers["Cache-Status"] for r in responses[1:] if "hit" not in
              r.headers["Cache-Status"]]
    assert misses == []
    # A refresh pass under way would be counted in part: read once none is.
    eventually(lambda: not stack.store.hexists(KEYS.locks(), "c42:subscriptions:launch-party"),
               5, "no refresh of the pages under way")
    counts = demo.upstream.counters()
    event, pages = counts["event"]["launch-party"], counts["subscriptions"]["launch-party"]
    assert set(event) == {"200", "304"} and event["200"] == 1
    assert set(pages) == {"200", "304"} and pages["200"] == 3
    periods = 10 * TTL / (TTL * RATIO)
    assert periods * 0.8 <= event["304"] <= periods * 1.3
    # Each pass revalidates all 3 pages; the two resources refresh on their own jitter.
    assert pages["304"] % 3 == 0 and abs(pages["304"] // 3 - event["304"]) <= 1
    # Refreshes ran about on time: the lag histogram counted them, mostly within a tick.
    samples = scrape(stack.api)
    count = samples[("cachedproxy_refresh_lag_seconds_count", (("upstream", "c42"),))]
    on_time = samples[("cachedproxy_refresh_lag_seconds_bucket",
                       (("le", "0.5"), ("upstream", "c42")))]
    assert count >= event["304"] and on_time >= 0.9 * count


def test_change_upstream_is_served_within_a_refresh_period(stack: Refreshing, demo: Demo):
    """A title changed upstream reaches clients within ttl × ratio plus one tick."""
    assert stack.get("team-standup").json()["title"] == "Team stand-up"
    demo.upstream.put_event("team-standup", "Stand-up (moved to 10:00)", None)
    changed = time.monotonic()
    eventually(lambda: stack.get("team-standup").json()["title"] == "Stand-up (moved to 10:00)",
               TTL * RATIO + TICK + 1.0, "the new title")
    assert time.monotonic() - changed <= TTL * RATIO + TICK + 0.5


def test_two_beats_do_not_double_upstream_calls(stack: Refreshing, demo: Demo):
    """With a second beat running, each resource is still refreshed once per period."""
    second = stack.processes.beat("second-beat")
    try:
        started = time.monotonic()
        read_steadily(stack, "board-meeting", seconds=5 * TTL, every=0.5)
        # Counted when the reading ends: refreshes go on while the second beat stops.
        refreshes = demo.upstream.count("event", "board-meeting", 304)
        elapsed = time.monotonic() - started
    finally:
        stack.processes.stop(second)
    # At most one per shortest refresh period (10 % jitter) of the time measured, and
    # the one a stale read may start; two beats doubling the work would be twice that.
    assert refreshes <= elapsed / (TTL * RATIO * 0.9) + 1


def test_idle_resource_leaves_the_schedule_but_a_configured_one_stays(stack: Refreshing,
                                                                     demo: Demo):
    """Unread for the idle timeout, a resource stops refreshing; a prefetch one never does."""
    stack.read_again("team-standup")
    eventually(lambda: not stack.scheduled("c42:event:team-standup"),
               IDLE + TTL + 2, "idle event dropped")
    calls = demo.upstream.count("event", "team-standup")
    assert stack.scheduled(f"c42:event:{PINNED}")
    before = demo.upstream.count("event", PINNED)
    eventually(lambda: demo.upstream.count("event", PINNED) >= before + 2, 2 * TTL + 1,
               "configured event keeps refreshing")
    assert stack.scheduled(f"c42:event:{PINNED}")
    assert demo.upstream.count("event", "team-standup") == calls


@pytest.mark.parametrize("fault", [{"mode": "error", "status": 500},
                                   {"mode": "timeout", "seconds": 3}])
def test_failing_refreshes_keep_data_and_back_off(stack: Refreshing, demo: Demo, fault):
    """Refreshes failing with 5xx or timeouts leave the cached data as it was, and are
    retried with growing delays rather than every tick; recovery clears the failures."""
    event = f"c42:event:{PINNED}"  # configured, so it stays live without reads
    eventually(lambda: stack.entry(event) is not None, 5, "warmed")
    before = stack.store.hgetall(KEYS.entry(event))
    demo.upstream.set_fault_from({**fault, "kind": "event", "id": PINNED})
    failed = time.monotonic()
    calls = demo.upstream.count("event", PINNED)
    eventually(lambda: stack.store.hget(KEYS.failures(), event) == "3", 12,
               "three failed refreshes")
    after = stack.store.hgetall(KEYS.entry(event))
    assert after["data"] == before["data"] and after["validators"] == before["validators"]
    attempts = demo.upstream.count("event", PINNED) - calls
    assert attempts <= (time.monotonic() - failed) / TICK / 2  # far fewer than ticks
    demo.upstream.set_fault(None)
    eventually(lambda: stack.store.hget(KEYS.failures(), event) is None, 5,
               "failures cleared by a good refresh")
    assert stack.entry(event).data == Entry.from_fields(before).data


def test_rate_limited_refresh_waits_for_retry_after(stack: Refreshing, demo: Demo):
    """A 429 postpones the next attempt by at least its Retry-After."""
    stack.read_again("team-standup")
    demo.upstream.set_fault_from({"mode": "rate_limit", "retry_after": 4, "kind": "event"})
    eventually(lambda: demo.upstream.count("event", "team-standup", 429) == 1, 5, "a 429")
    eventually(lambda: stack.store.hget(KEYS.failures(), "c42:event:team-standup") == "1",
               2, "failure counted")
    due = stack.store.zscore(KEYS.schedule(), "c42:event:team-standup")
    assert due / 1000 - time.time() > 3.0


def test_resource_gone_upstream_stops_refreshing(stack: Refreshing, demo: Demo):
    """An upstream 404 on refresh is cached as not found and the resource leaves the schedule."""
    stack.read_again("team-standup")
    demo.upstream.remove_event("team-standup")
    eventually(lambda: not stack.scheduled("c42:event:team-standup"), TTL + 1, "dropped")
    assert stack.get("team-standup").status_code == 404
    entry = stack.entry("c42:event:team-standup")
    assert entry is not None and entry.status == 404


def test_schedule_of_configured_resources_rebuilds_after_redis_loses_data(stack: Refreshing,
                                                                          demo: Demo):
    """After a FLUSHALL the configured event is scheduled and cached again by itself,
    and misses work as before."""
    eventually(lambda: stack.entry(f"c42:event:{PINNED}") is not None, 5, "warmed at start")
    stack.store.flushall()
    eventually(lambda: stack.entry(f"c42:event:{PINNED}") is not None
               and stack.entry(f"c42:subscriptions:{PINNED}") is not None, 5, "rebuilt")
    assert stack.scheduled(f"c42:event:{PINNED}")
    assert stack.get("team-standup").json() == expected("team-standup")


def test_worker_restart_loses_no_schedule_and_causes_no_burst(stack: Refreshing, demo: Demo):
    """Workers down for a while: the schedule is intact, and the ticks queued meanwhile
    do not turn into a burst of upstream calls when a worker is back."""
    eventually(lambda: stack.entry(f"c42:event:{PINNED}") is not None, 5, "warmed")
    stack.stop_worker()
    # Taken once no worker runs: until then a tick may still drop an idle resource.
    scheduled = set(stack.store.zrange(KEYS.schedule(), 0, -1))
    time.sleep(TTL)  # downtime: beat keeps ticking into the queue
    assert set(stack.store.zrange(KEYS.schedule(), 0, -1)) == scheduled
    stack.start_worker("worker-again")
    back = demo.upstream.count("event", PINNED)
    time.sleep(2 * TTL)  # two refresh periods of normal running
    assert demo.upstream.count("event", PINNED) - back <= 2 * TTL / (TTL * RATIO * 0.9) + 1


def test_upstream_outage_longer_than_the_ttl_is_not_an_outage(stack: Refreshing, demo: Demo):
    """Upstream answering 500 for longer than the TTL: clients keep getting 200 with the
    last good data and a stale Cache-Status, and upstream is not asked once per request."""
    assert stack.get("team-standup").status_code == 200
    demo.upstream.set_fault_from({"mode": "error", "status": 500, "kind": "event",
                                  "id": "team-standup"})
    responses = read_steadily(stack, "team-standup", seconds=3 * TTL, every=0.1)
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json() == expected("team-standup") for r in responses)
    statuses = [r.headers["Cache-Status"] for r in responses]
    assert any("detail=stale-if-error" in s for s in statuses)
    assert "fwd=stale" in statuses[-1]
    upstream_calls = demo.upstream.count("event", "team-standup") - 1
    assert upstream_calls < len(responses) / 4


def test_readyz_follows_workers_and_beat(stack: Refreshing):
    """/readyz is 200 with a worker and beat running, 503 while the worker is stopped
    (saying which check failed), and 200 again once it is back."""
    def readyz() -> requests.Response:
        return requests.get(f"{stack.api}/readyz", timeout=10)

    eventually(lambda: readyz().status_code == 200, 10, "ready")
    body = readyz().json()
    assert body["status"] == "ready" and body["checks"]["workers"]["seen"]
    assert body["checks"]["beat"]["last_tick_s_ago"] < 5
    stack.stop_worker()
    r = readyz()
    assert r.status_code == 503
    assert r.json()["checks"]["workers"] == {"ok": False, "seen": []}
    assert r.json()["checks"]["redis"] == {"ok": True}
    stack.start_worker("worker-back")
    eventually(lambda: readyz().status_code == 200, 10, "ready again")


def upstream_requests(demo: Demo) -> int:
    return sum(n for kind in demo.upstream.counters().values() for by_id in kind.values()
               for n in by_id.values())


def test_upstream_outage_costs_a_probe_per_interval_and_recovery_is_prompt(
        stack: Refreshing, demo: Demo):
    """The whole upstream failing for 6 s (3 TTLs) under 16 live resources: clients get
    200 throughout, upstream sees about one request per probe interval instead of one
    per resource and retry, and within probe_max (+ spread and a tick) of the end every
    resource is refreshed."""
    events = [f"outage-{i}" for i in range(8)]
    for event in events:
        demo.upstream.put_event(event, f"Outage {event}", ["Ada"])
        assert stack.get(event).status_code == 200
    resources = [f"c42:{kind}:{e}" for e in events for kind in ("event", "subscriptions")]
    demo.upstream.set_fault_from({"mode": "error", "status": 503})
    before = upstream_requests(demo)
    outage = 3 * TTL
    start = time.monotonic()
    statuses = []
    while time.monotonic() - start < outage:
        for event in events:
            statuses.append(stack.get(event).status_code)
        time.sleep(0.1)
    during = upstream_requests(demo) - before
    demo.upstream.set_fault(None)
    ended = time.time()
    assert set(statuses) == {200}
    # Per resource and retry it would be ~16 resources × 5 attempts; per upstream it is
    # the refreshes under way when the outage began (at worst every resource's, as a
    # worker runs many at once), then one probe per interval.
    assert during <= outage / PROBE_MAX + len(resources), during
    held = stack.store.smembers(KEYS.held("c42"))
    assert held, "refreshes were held while the upstream failed"

    def all_refreshed() -> bool:
        entries = [stack.entry(r) for r in resources]
        return all(e is not None and e.checked_at > ended for e in entries)

    eventually(all_refreshed, PROBE_MAX + 3, "every resource refreshed after the outage")
    assert stack.store.exists(KEYS.upstream_health("c42")) == 0
