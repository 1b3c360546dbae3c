"""The single-flight lock's lifetime: held for the waiters until the task starts, then
for the fetch's time limit; a task message that never arrives blocks a resource briefly."""

from __future__ import annotations

import redis

from shared.store.flights import LOCK_TIMEOUT_MS, Flights, Outcome
from shared.store.keys import Keys
from tests.integration.conftest import PREFIX, eventually
from tests.integration.test_events_view import VIEW, expected, get


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
    lock = Keys(PREFIX).lock("c42:event:x")
    mine = flights.join("c42:event:x", hold_ms=2000)
    assert flights.start(mine)
    assert store.pttl(lock) > 2000 and store.pttl(lock) <= LOCK_TIMEOUT_MS
    store.delete(lock)
    assert flights.start(mine) and store.get(lock) == mine.token  # free: taken again
    store.set(lock, "another", px=5000)
    assert not flights.start(mine)
    assert store.get(lock) == "another"


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
    assert store.exists(Keys(PREFIX).lock("c42:event:lost")) == 0
    assert flights.fail_abandoned("w@host", Outcome("fetch_failed", "killed")) == []
