"""The claim script on a real Redis: limits, leases, idle drops and configured resources."""

from __future__ import annotations

import time

import pytest
import redis

from shared.store.keys import Keys
from shared.store.schedule import Schedule
from tests.helpers import PREFIX, claim

KEYS = Keys(PREFIX)


@pytest.fixture
def schedule(store: redis.Redis) -> Schedule:
    for key in (KEYS.schedule(), KEYS.reads(), KEYS.failures()):
        store.delete(key)
    return Schedule(store, KEYS)


def read_now(schedule: Schedule, *resources: str) -> None:
    pipe = schedule.redis.pipeline()
    schedule.record_reads(pipe, resources, time.time(), 600)
    pipe.execute()


def test_claim_takes_due_resources_once_and_leases_them(schedule: Schedule, store):
    """Due resources are claimed once; their score moves past the lease, so a second
    tick (or a second beat) claims nothing; future ones are left alone."""
    now = time.time()
    read_now(schedule, "r:1", "r:2", "r:3")
    schedule.succeeded("r:1", now - 1)
    schedule.succeeded("r:2", now - 2)
    schedule.succeeded("r:3", now + 60)
    claimed, dropped = claim(schedule, limit=10, lease=30, idle=600)
    assert sorted(claimed) == ["r:1", "r:2"] and dropped == 0
    assert claim(schedule, limit=10, lease=30, idle=600) == ([], 0)
    assert store.zscore(KEYS.schedule(), "r:1") / 1000 == pytest.approx(now + 30, abs=2)


def test_claim_takes_what_comes_due_before_the_next_tick(schedule: Schedule):
    """With ``ahead`` (the tick interval) a resource due before the next tick is claimed
    now, at most that early; later ones wait. Without it only what is due now."""
    now = time.time()
    read_now(schedule, "soon", "later")
    schedule.succeeded("soon", now + 0.5)
    schedule.succeeded("later", now + 3)
    assert claim(schedule, limit=10, lease=30, idle=600) == ([], 0)
    due, _ = schedule.claim_due(limit=10, lease=30, idle=600, ahead=1.5)
    assert [resource for resource, _ in due] == ["soon"]
    assert due[0][1] == pytest.approx(now + 0.5, abs=0.01)  # still reported as due then


def test_claim_is_bounded_and_oldest_first(schedule: Schedule):
    """One tick claims at most ``limit``, the longest overdue first; the rest wait."""
    now = time.time()
    for i in range(5):
        read_now(schedule, f"r:{i}")
        schedule.succeeded(f"r:{i}", now - 10 + i)
    assert claim(schedule, limit=2, lease=30, idle=600)[0] == ["r:0", "r:1"]
    assert claim(schedule, limit=10, lease=30, idle=600)[0] == ["r:2", "r:3", "r:4"]


def test_unread_resources_leave_the_schedule(schedule: Schedule, store):
    """A due resource last read longer ago than the idle time is dropped, not claimed."""
    now = time.time()
    schedule.succeeded("read", now - 1)
    schedule.succeeded("unread", now - 1)
    read_now(schedule, "read")
    pipe = schedule.redis.pipeline()
    schedule.record_reads(pipe, ["unread"], now - 700, 600)
    pipe.execute()
    claimed, dropped = claim(schedule, limit=10, lease=30, idle=600)
    assert claimed == ["read"] and dropped == 1
    assert store.zscore(KEYS.schedule(), "unread") is None
    assert store.zscore(KEYS.reads(), "unread") is None


def test_resource_without_a_read_record_starts_its_idle_clock(schedule: Schedule, store):
    """After Redis lost the reads (or nothing recorded one yet) a due resource is kept
    and its idle time counted from now, so a popular view is not dropped by accident."""
    schedule.succeeded("r", time.time() - 1)
    assert claim(schedule, limit=10, lease=30, idle=600) == (["r"], 0)
    assert store.zscore(KEYS.reads(), "r") / 1000 == pytest.approx(time.time(), abs=2)


def test_configured_resources_are_added_and_never_dropped(schedule: Schedule, store):
    """Configured resources join the schedule if missing, due at once, and are claimed
    though nobody reads them."""
    claimed, _ = claim(schedule, limit=10, lease=30, idle=600, pinned=["p:1", "p:2"])
    assert sorted(claimed) == ["p:1", "p:2"]
    assert store.zcard(KEYS.schedule()) == 2


def test_reads_only_move_forward(schedule: Schedule, store):
    """Recording an older read never makes a resource look idle sooner."""
    pipe = schedule.redis.pipeline()
    schedule.record_reads(pipe, ["r"], 2000.0, 600)
    schedule.record_reads(pipe, ["r"], 1000.0, 600)
    pipe.execute()
    assert store.zscore(KEYS.reads(), "r") == 2_000_000


def test_a_second_read_within_the_idle_time_admits_a_resource(schedule: Schedule, store):
    """One read records it; a second within the idle time puts it on the schedule, due
    at once, if its data is stored (not a remembered 404, not a miss refused); a read
    after a longer gap counts as a first again. A miss's fetch plans a
    resource only if it is live already; reads of resources never admitted are
    forgotten by the tick after the idle time."""
    now = time.time()
    for resource, status in (("twice", 200), ("once", 200), ("gap", 200), ("gone", 404)):
        store.hset(KEYS.entry(resource), "status", status)
    pipe = schedule.redis.pipeline()
    schedule.record_reads(pipe, ["twice", "once", "gap", "gone", "never"], now - 700, 600)
    schedule.record_reads(pipe, ["twice", "gone", "never"], now - 100, 600)
    schedule.record_reads(pipe, ["gap"], now, 600)
    pipe.execute()
    assert store.zscore(KEYS.schedule(), "twice") == pytest.approx((now - 100) * 1000, abs=2)
    for not_admitted in ("once", "gap", "gone", "never"):  # no data stored: gone, never
        assert store.zscore(KEYS.schedule(), not_admitted) is None, not_admitted
    schedule.succeeded("once", now + 60, admit=False)
    schedule.succeeded("twice", now + 60, admit=False)
    assert store.zscore(KEYS.schedule(), "once") is None
    assert store.zscore(KEYS.schedule(), "twice") == pytest.approx((now + 60) * 1000, abs=2)
    claim(schedule, limit=10, lease=30, idle=600)
    assert store.zscore(KEYS.reads(), "once") is None  # read 700 s ago, never admitted
    assert store.zscore(KEYS.reads(), "gap") is not None  # read just now
    assert store.zscore(KEYS.reads(), "twice") is not None  # live


def test_failed_refresh_is_postponed_only_while_live(schedule: Schedule, store):
    """A failure postpones a scheduled resource, but does not add an unscheduled one."""
    schedule.succeeded("live", time.time())
    assert schedule.note_failure("live") == 1
    assert schedule.note_failure("live") == 2
    schedule.postpone("live", time.time() + 100)
    schedule.postpone("gone", time.time() + 100)
    assert store.zscore(KEYS.schedule(), "gone") is None
    schedule.succeeded("live", time.time() + 5)
    assert store.hget(KEYS.failures(), "live") is None


def test_backing_off_means_failed_and_retry_not_due(schedule: Schedule):
    """A resource is backing off only while it has failures and its retry lies ahead."""
    now = time.time()
    schedule.succeeded("failing", now)
    schedule.succeeded("healthy", now + 60)
    schedule.note_failure("failing")
    schedule.postpone("failing", now + 30)
    assert schedule.backing_off_each(["failing"], now) == [True]
    assert schedule.backing_off_each(["failing", "healthy"], now) == [True, False]
    assert schedule.backing_off_each(["failing"], now + 31) == [False]
    assert schedule.backing_off_each(["unknown"], now) == [False]


def test_pull_in_moves_later_refreshes_of_one_upstream_into_the_period(schedule: Schedule,
                                                                       store):
    """After a TTL cut, refreshes planned beyond the new period move into it, spread out;
    other upstreams' and earlier ones stay."""
    now = time.time()
    schedule.succeeded("c42:event:1", now + 200)
    schedule.succeeded("c42:event:2", now + 150)
    schedule.succeeded("c42:event:3", now + 2)
    schedule.succeeded("gh:repo:1", now + 200)
    assert schedule.pull_in("c42:", now, period=10) == 2
    moved = sorted(store.zscore(KEYS.schedule(), f"c42:event:{i}") / 1000 for i in (1, 2))
    assert now <= moved[0] < moved[1] <= now + 10
    assert store.zscore(KEYS.schedule(), "c42:event:3") / 1000 == pytest.approx(now + 2, abs=1)
    assert store.zscore(KEYS.schedule(), "gh:repo:1") / 1000 == pytest.approx(now + 200, abs=1)
