"""Past one machine: Redis Sentinel under the cache and the broker, and two API process
groups, two workers and two beats standing in for hosts; the master killed under load.

Started here on loopback: a master, a replica and three sentinels (tests.harness.
SentinelStand), then every process with REDIS_SENTINELS only; none of them is told of a
failover or restarted.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from tests.harness import SentinelStand, Stack, isolated_env, wait_for_worker
from tests.helpers import VIEW, eventually

TTL = 6
PERIOD = TTL * 0.8  # a live resource's refresh period (REFRESH_RATIO 0.8)
MISS_WAIT = 6.0
FLOWER_LOGIN = ("ops", "flower-ha-password")


@dataclass
class Cluster:
    stand: SentinelStand
    env: dict[str, str]
    apis: list[str]
    flower: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)

    def all_running(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("sentinel")
    stand = SentinelStand(work / "redis").start()
    env = isolated_env(
        work, "redis://127.0.0.1:1/0",  # host and port unused: the sentinels name the master
        demo.base_url, demo.upstream.token,
        REDIS_SENTINELS=stand.addresses, KEY_PREFIX="cpha", CACHE_TTL=str(TTL),
        REFRESH_TICK_INTERVAL="0.5", API_WORKERS="1", API_MISS_WAIT_TIMEOUT=str(MISS_WAIT),
        REDIS_SOCKET_TIMEOUT="1", UPSTREAM_CONNECT_TIMEOUT="1", UPSTREAM_READ_TIMEOUT="3",
    )
    cluster = Cluster(stand, env, [])
    try:
        with Stack(env, work / "logs") as stack:
            for host in ("a", "b"):
                stack.worker(f"ha-{host}")
                stack.beat(f"beat-{host}")
                cluster.apis.append(stack.api(f"api-{host}"))
            cluster.flower = stack.flower(FLOWER_BASIC_AUTH=":".join(FLOWER_LOGIN))
            cluster.procs = stack.procs
            yield cluster
    finally:
        stand.stop()


def events(demo, name: str, count: int) -> list[str]:
    ids = [f"{name}-{i}" for i in range(count)]
    for i, event_id in enumerate(ids):
        demo.upstream.put_event(event_id, f"Event {event_id}", [f"Ada{i}", f"Grace{i}"])
    return ids


def fetches(demo, event_id: str) -> int:
    return demo.upstream.count("event", event_id)


def warm(cluster: Cluster, demo, name: str) -> tuple[list[str], dict[str, int]]:
    """Four new events, each view read once from every API; their ids and how often
    upstream was asked for each so far."""
    ids = events(demo, name, 4)
    for event_id in ids:
        for api in cluster.apis:
            r = requests.get(f"{api}{VIEW}/{event_id}/", timeout=15)
            assert r.status_code == 200, r.text
    return ids, {e: fetches(demo, e) for e in ids}


@dataclass
class Answers:
    """Every answer of a steady read loop: (monotonic time, status, api, event), and
    those an API process answered from its own copy because Redis was unreachable."""
    seen: list[tuple[float, int, str, str]] = field(default_factory=list)
    from_copies: set[tuple[float, int, str, str]] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def read(self, cluster: Cluster, ids: list[str], offset: int) -> None:
        pairs = [(api, e) for api in cluster.apis for e in ids]
        i = offset
        while not self.stop.is_set():
            api, event_id = pairs[i % len(pairs)]
            i += 1
            copy = False
            try:
                r = requests.get(f"{api}{VIEW}/{event_id}/", timeout=15)
                status = r.status_code
                copy = "store-unavailable" in r.headers.get("Cache-Status", "")
            except requests.RequestException:
                status = 0
            answer = (time.monotonic(), status, api, event_id)
            self.seen.append(answer)
            if copy:
                self.from_copies.add(answer)
            time.sleep(0.01)

    @contextlib.contextmanager
    def reading(self, cluster: Cluster, ids: list[str], readers: int) -> Iterator[None]:
        """``readers`` clients read every view of ``ids`` from every API in turn."""
        with ThreadPoolExecutor(readers) as pool:
            for offset in range(readers):
                pool.submit(self.read, cluster, ids, offset)
            try:
                yield
            finally:
                self.stop.set()

    def failures(self) -> list[tuple[float, int, str, str]]:
        return [a for a in self.seen if a[1] != 200]


def test_two_of_everything_fetch_each_resource_once_per_refresh_period(cluster, demo):
    """Two beats tick and two workers refresh the same schedule: each live resource is
    fetched from upstream once per period, not once per beat or per worker."""
    ids, before = warm(cluster, demo, "hosts")
    started = time.monotonic()
    answers = Answers()
    with answers.reading(cluster, ids, readers=2):
        time.sleep(3 * PERIOD)  # the load runs for three refresh periods
    elapsed = time.monotonic() - started
    assert answers.seen and not answers.failures()
    for event_id in ids:
        refreshed = fetches(demo, event_id) - before[event_id]
        assert 2 <= refreshed <= elapsed / PERIOD + 1, (event_id, refreshed, elapsed)


def test_killing_the_master_under_steady_reads_costs_seconds_not_a_restart(cluster, demo):
    """Warm views read steadily from both API groups; the master is SIGKILLed. The
    sentinels promote the replica, every process follows by itself, answers are 200
    again within seconds (503 at worst meanwhile), and upstream sees at most one extra
    request per resource."""
    ids, before = warm(cluster, demo, "steady")
    started = time.monotonic()
    answers = Answers()
    with answers.reading(cluster, ids, readers=4):
        time.sleep(1)
        killed_at = time.monotonic()
        old = cluster.stand.kill_master()
        cluster.stand.wait_failover(old)
        promoted_at = time.monotonic()
        # Read on until every API has answered every view 200 from Redis for two
        # seconds (a copy served while Redis was unreachable is a 200 too, but the
        # process has not found the new master yet).
        deadline = promoted_at + 30
        while time.monotonic() < deadline:
            recent = [a for a in answers.seen if a[0] > time.monotonic() - 2]
            settled = {(a[2], a[3]) for a in recent
                       if a[1] == 200 and a not in answers.from_copies}
            if len(settled) == 2 * len(ids) and all(
                    a[1] == 200 and a not in answers.from_copies for a in recent):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("not every view read from Redis again within 30 s")
    elapsed = time.monotonic() - started
    failures = answers.failures()
    assert {status for _, status, _, _ in failures} <= {503}, failures[:5]
    last_failure = max((t for t, _, _, _ in failures), default=killed_at)
    assert last_failure - killed_at < 10, (last_failure - killed_at, promoted_at - killed_at)
    assert all(a[1] == 200 for a in answers.seen if a[0] > last_failure)
    assert cluster.all_running()
    for event_id in ids:
        fetched = fetches(demo, event_id) - before[event_id]
        assert fetched <= elapsed / PERIOD + 1 + 1, (event_id, fetched, elapsed)
    cluster.stand.rejoin(old)


def test_killing_the_master_during_cold_misses_answers_every_wait(cluster, demo):
    """Cold misses wait on fetches that take a second upstream when the master dies:
    each gets its view, a 503 or a 504 within its wait, never a hang; afterwards every
    resource answers (none is left locked) and upstream saw at most one extra request
    per resource."""
    ids = events(demo, "cold", 6)
    demo.upstream.set_latency(1.0)
    started = time.monotonic()
    requests_ = [(cluster.apis[i % 2], event_id) for i in range(3) for event_id in ids]

    def ask(api: str, event_id: str) -> tuple[int, float]:
        began = time.monotonic()
        r = requests.get(f"{api}{VIEW}/{event_id}/", timeout=MISS_WAIT + 15)
        if r.status_code != 200:
            assert r.headers["Content-Type"].startswith("application/json"), r.text
        return r.status_code, time.monotonic() - began

    with ThreadPoolExecutor(len(requests_)) as pool:
        pending = [pool.submit(ask, api, e) for api, e in requests_]
        # Refreshes of the earlier tests' resources take the same second upstream.
        assert demo.upstream.wait_for_request("event", ids[0], timeout=30)
        old = cluster.stand.kill_master()
        answered = [f.result(timeout=MISS_WAIT + 20) for f in pending]
    assert {status for status, _ in answered} <= {200, 503, 504}, answered
    assert max(took for _, took in answered) < MISS_WAIT + 3, answered
    cluster.stand.wait_failover(old)
    demo.upstream.set_latency(0)
    recovered_at = time.monotonic()
    for event_id in ids:
        while True:
            r = requests.get(f"{cluster.apis[1]}{VIEW}/{event_id}/", timeout=MISS_WAIT + 5)
            if r.status_code == 200:
                break
            assert time.monotonic() - recovered_at < TTL + MISS_WAIT + 5, (event_id, r.text)
            time.sleep(0.2)
        assert r.json()["names"] == [f"Ada{ids.index(event_id)}", f"Grace{ids.index(event_id)}"]
    refreshes = (time.monotonic() - started) / PERIOD  # of a resource, at most, meanwhile
    for event_id in ids:
        assert 1 <= fetches(demo, event_id) <= 1 + 1 + refreshes, (
            event_id, fetches(demo, event_id), refreshes)
    for host in ("a", "b"):  # both workers came through, fetches reserved or not
        wait_for_worker(cluster.env, cluster.procs[0], timeout=30,
                        hostname=f"ha-{host}@{socket.gethostname()}")
    assert cluster.all_running()
    cluster.stand.rejoin(old)


def test_flower_follows_the_failovers(cluster, demo):
    """After the failovers above, Flower (connected through the sentinels too) still
    sees the fetches that new misses cause."""
    (event_id,) = events(demo, "flower", 1)
    r = requests.get(f"{cluster.apis[0]}{VIEW}/{event_id}/", timeout=15)
    assert r.status_code == 200, r.text

    def listed() -> bool:
        tasks = requests.get(f"{cluster.flower}/api/tasks", auth=FLOWER_LOGIN, timeout=10)
        return any(event_id in str(t.get("args")) for t in tasks.json().values())

    eventually(listed, 20, "flower lists the fetch of a miss after the failovers")


def test_the_sentinel_settings_reach_every_part(cluster):
    """``/readyz`` of both API groups sees Redis (naming the master the sentinels chose
    after the failovers), both workers and a beat, all found through the sentinels."""
    for api in cluster.apis:
        body = requests.get(f"{api}/readyz", timeout=5).json()
        assert body["status"] == "ready", body
        assert body["checks"]["redis"]["master"] == f"127.0.0.1:{cluster.stand.master()}"
        assert {"ha-a@", "ha-b@"} <= {w.split("@")[0] + "@" for w in
                                       body["checks"]["workers"]["seen"]}
