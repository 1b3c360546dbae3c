"""The single-flight lock's lifetime: held for the waiters until the task starts, then
for the fetch's time limit; a task message that never arrives blocks a resource briefly."""

from __future__ import annotations

import time

import redis

from shared.store.entries import EntryStore
from shared.store.entry import Validator, fetched
from shared.store.flights import LOCK_TIMEOUT_MS, Flights, Outcome
from shared.store.inventory import Inventory
from shared.store.keys import Keys
from tests.helpers import PREFIX, VIEW, eventually, expected, get, lock_holder


def test_lost_task_message_blocks_a_resource_only_for_the_wait(serve_api, store, demo):
    """A flight whose fetch task never reaches a worker: requests that follow it time
    out, and once its hold has run out the next request leads a fetch of its own."""
    flights = Flights(store, Keys(PREFIX))
    lost = flights.join("c42:event:team-standup", hold_ms=1500)  # no task is ever sent
    assert lost.leader
    url = serve_api(api={"miss_wait_timeout": 0.3})
    assert get(f"{url}{VIEW}/team-standup/").json()["error"]["code"] == "fetch_timeout"
    assert demo.upstream.count("event", "team-standup") == 0
    eventually(lambda: get(f"{url}{VIEW}/team-standup/").status_code == 200, 5,
               "a new flight after the lost one's hold")
    assert get(f"{url}{VIEW}/team-standup/").json() == expected("team-standup")


def test_task_start_extends_its_own_lock_and_yields_to_another(store: redis.Redis):
    """start(): a task holding its lock extends it to the fetch's limit; a task whose
    lock expired takes it again if free, and gives way if another flight leads."""
    flights = Flights(store, Keys(PREFIX))
    locks = Keys(PREFIX).locks()
    mine = flights.join("c42:event:x", hold_ms=2000)
    assert flights.start(mine)
    assert held_for(store, "c42:event:x") > 2000
    assert held_for(store, "c42:event:x") <= LOCK_TIMEOUT_MS
    store.hdel(locks, "c42:event:x")
    assert flights.start(mine) and lock_holder(flights, "c42:event:x") == mine.token  # free: taken
    assert flights.join("c42:event:x").token == mine.token  # followers get the holder
    store.hset(locks, "c42:event:x", f"another {now_ms(store) + 5000}")
    assert not flights.start(mine)
    assert lock_holder(flights, "c42:event:x") == "another"


def test_locks_and_outcomes_end_at_their_deadlines_without_a_redis_ttl(store: redis.Redis):
    """Nothing but cache entries carries a TTL (only those may be evicted); a lock past
    its deadline is free to the next flight, and the sweep removes it and old outcomes."""
    flights = Flights(store, Keys(PREFIX))
    old = flights.join("c42:event:old", hold_ms=1)
    other = flights.join("c42:event:held")
    done = flights.join("c42:event:done")
    flights.finish(done, Outcome())
    assert store.ttl(Keys(PREFIX).locks()) == -1
    eventually(lambda: lock_holder(flights, "c42:event:old") is None, 2, "the lock's deadline")
    new = flights.join("c42:event:old")
    assert new.leader and new.token != old.token
    store.hset(Keys(PREFIX).locks(), "c42:event:old", f"{new.token} {now_ms(store) - 1}")
    assert flights.sweep() == (1, 0, 0)  # outcomes are kept for RESULT_TTL_MS
    assert store.hkeys(Keys(PREFIX).locks()) == ["c42:event:held"]
    assert lock_holder(flights, "c42:event:held") == other.token
    kept = store.zrange(Keys(PREFIX).results(), 0, -1)
    assert kept == [Keys(PREFIX).result("c42:event:done", done.token)]
    assert store.ttl(kept[0]) == -1
    store.zadd(Keys(PREFIX).results(), {kept[0]: 0})
    assert flights.sweep() == (0, 1, 0)
    assert not store.exists(kept[0]) and store.zcard(Keys(PREFIX).results()) == 0


def test_purge_generations_last_only_while_a_fetch_may_compare_against_them(store):
    """A purge bumps each resource's generation so that a fetch under way cannot store
    what it got before; the sweep keeps the generation while a flight holds the
    resource, and drops it once none does (the hash does not grow with every purge)."""
    keys = Keys(PREFIX)
    flights, entries, inventory = Flights(store, keys), EntryStore(store, keys), Inventory(
        store, keys)
    running = flights.join("c42:event:busy")
    began_at = entries.generation("c42:event:busy")  # as the fetch under way read it
    inventory.purge(["c42:event:busy", "c42:event:idle"])
    assert flights.sweep() == (0, 0, 1)
    assert store.hkeys(keys.generations()) == ["c42:event:busy"]
    now = time.time()
    data = fetched({"id": "busy"}, (Validator('"1"'),), now, 60)
    assert not entries.save("c42:event:busy", data, now + 60, began_at)  # purged since
    flights.finish(running, Outcome())
    assert flights.sweep() == (0, 0, 1)
    assert store.hlen(keys.generations()) == 0
    assert entries.save("c42:event:busy", data, now + 60, entries.generation("c42:event:busy"))


def now_ms(store: redis.Redis) -> int:
    seconds, micros = store.time()
    return seconds * 1000 + micros // 1000


def held_for(store: redis.Redis, resource: str) -> int:
    """How many more ms the resource's lock is held."""
    deadline = int(store.hget(Keys(PREFIX).locks(), resource).split(" ")[1])
    return deadline - now_ms(store)


def test_flights_abandoned_by_a_killed_worker_are_failed_once(store: redis.Redis):
    """What a worker left running when it was killed is failed when it starts again:
    waiters hear fetch_failed, the lock goes; flights it finished are not touched."""
    flights = Flights(store, Keys(PREFIX))
    lost = flights.join("c42:event:lost")
    done = flights.join("c42:event:done")
    flights.track("w@host", lost)
    flights.track("w@host", done)
    flights.finish(done, Outcome(), worker="w@host")
    failed = flights.fail_abandoned("w@host", Outcome("fetch_failed", "killed"))
    assert [f.resource for f in failed] == ["c42:event:lost"]
    assert flights.wait(lost, 1.0).code == "fetch_failed"
    assert not store.hexists(Keys(PREFIX).locks(), "c42:event:lost")
    assert flights.fail_abandoned("w@host", Outcome("fetch_failed", "killed")) == []
