"""A Redis capped the way ``make run`` caps it (``REDIS_MAX_MEMORY``, ``volatile-lru``):
three times the cap of cache entries written, and every write is taken, old entries are
evicted, and not one queued task, schedule entry, lock, outcome or generation is lost.

Only cache entries carry a TTL (``volatile-lru`` evicts nothing else); the second test
runs the product's own paths and checks that nothing else it writes has one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from launcher.services import free_port, memory_cap
from shared.config.settings import load_settings
from shared.queue import REFRESH_QUEUE, REFRESH_TASK, celery_app
from shared.store.entries import EntryStore
from shared.store.entry import Validator, fetched
from shared.store.flights import Flights, Outcome
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from tests.harness import start_redis, stop
from tests.helpers import PREFIX, VIEW, get, lock_holder

CAP_MB = 20
ENTRY_BYTES = 100_000
ENTRIES = 600  # 60 MB: three times the cap


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    port = free_port()
    proc: subprocess.Popen = start_redis(tmp_path, port, False, *memory_cap(f"{CAP_MB}mb"))
    url = f"redis://127.0.0.1:{port}/0"
    try:
        yield redis.Redis.from_url(url, decode_responses=True), url
    finally:
        stop([proc])


def test_entries_past_the_cap_evict_old_entries_and_nothing_else(capped, env):
    """60 MB of entries into 20 MB: every save succeeds, Redis stays under its cap by
    evicting entries, and the queue, schedule, locks, outcomes and generations written
    before are all still there, counted one by one."""
    client, url = capped
    keys = Keys("capped")
    entries, flights, schedule = EntryStore(client, keys), Flights(client, keys), Schedule(
        client, keys)
    now = time.time()
    queue = celery_app(load_settings({**env, "REDIS_URL": url, "KEY_PREFIX": "capped"}))
    with queue.connection_for_write() as conn:
        for i in range(200):  # no worker consumes these
            queue.send_task(REFRESH_TASK, (f"c42:event:q{i}",), queue=REFRESH_QUEUE,
                            connection=conn)
    for i in range(500):
        schedule.succeeded(f"c42:event:s{i}", now + 3600)
    held = [flights.join(f"c42:event:l{i}") for i in range(100)]
    for flight in held[:50]:
        flights.finish(flight, Outcome())
    for i in range(300):
        client.hincrby(keys.generations(), f"c42:event:g{i}", 1)

    for i in range(ENTRIES):
        data = {"id": str(i), "padding": "x" * ENTRY_BYTES}
        entry = fetched(data, (Validator(f'"{i}"'),), now, 60)
        assert entries.save(f"c42:event:e{i}", entry, now + 3600)

    memory, stats = client.info("memory"), client.info("stats")
    assert stats["evicted_keys"] > 0
    assert memory["used_memory"] <= CAP_MB * 1024 * 1024
    assert client.llen(keys.queue(REFRESH_QUEUE)) == 200
    assert client.zcard(keys.schedule()) == 500
    assert [lock_holder(flights, f.resource) for f in held[50:]] == [f.token for f in held[50:]]
    assert all(flights.wait(flight, 0.1) == Outcome() for flight in held[:50])
    assert client.hlen(keys.generations()) == 300
    kept = sum(1 for _ in client.scan_iter(keys.pattern("entry"), count=1000))
    evicted = client.info("stats")["evicted_keys"]  # the checks' own writes may evict too
    assert ENTRIES - evicted == kept < ENTRIES // 2
    newest = entries.read([f"c42:event:e{ENTRIES - 1}"])[0]
    assert newest is not None and newest.data["id"] == str(ENTRIES - 1)


def test_only_cache_entries_carry_a_ttl(api, store: redis.Redis):
    """After misses, hits, refreshes, a purge and the tick's sweep, every key of the
    deployment but the cache entries lives without a TTL, so the eviction policy cannot
    take it."""
    for event in ("launch-party", "team-standup", "no-such-event"):
        get(f"{api}{VIEW}/{event}/")
        get(f"{api}{VIEW}/{event}/")
    keys = Keys(PREFIX)
    with_ttl = {key for key in store.scan_iter(keys.pattern(), count=1000)
                if store.pttl(key) >= 0}
    entries = {key for key in store.scan_iter(keys.pattern("entry"), count=1000)}
    assert len(entries) >= 5
    assert with_ttl == entries
