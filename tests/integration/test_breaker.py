"""The per-upstream back-off on a real Redis: threshold, one probe at a time, held
resources returned when the upstream answers."""

from __future__ import annotations

import pytest
import redis

from shared.store.breaker import THRESHOLD, UpstreamBreaker
from shared.store.keys import Keys
from tests.helpers import PREFIX

KEYS = Keys(PREFIX)
NOW = 1_800_000_000.0


@pytest.fixture
def breaker(store: redis.Redis) -> UpstreamBreaker:
    for upstream in ("up", "other"):
        store.delete(KEYS.upstream_health(upstream), KEYS.held(upstream))
    return UpstreamBreaker(store, KEYS)


def fail(breaker: UpstreamBreaker, times: int, now: float = NOW) -> float | None:
    probe_at = None
    for _ in range(times):
        probe_at = breaker.failed("up", now, lambda n: 2.0 * n)
    return probe_at


def test_below_the_threshold_every_refresh_goes(breaker: UpstreamBreaker):
    """Fewer than THRESHOLD failures in a row: not failing, nothing held."""
    assert fail(breaker, THRESHOLD - 1) is None
    assert breaker.gate("up", "r:1", NOW, lease=30).allowed


def test_an_answer_resets_the_count(breaker: UpstreamBreaker):
    """One bad resource among good ones never makes its upstream failing."""
    fail(breaker, THRESHOLD - 1)
    assert breaker.answered("up") is None  # was not failing: nothing to recover
    assert fail(breaker, THRESHOLD - 1) is None


def test_failing_upstream_lets_one_probe_go_per_interval(breaker: UpstreamBreaker):
    """At the threshold the upstream is failing: refreshes are held until the probe is
    due; then exactly one goes, and the others are held while it runs."""
    probe_at = fail(breaker, THRESHOLD)
    assert probe_at == NOW + 2.0  # delay(1): the first interval past the threshold
    assert breaker.gate("other", "o:1", NOW, lease=30).allowed  # upstreams apart
    held = breaker.gate("up", "r:1", NOW + 1, lease=30)
    assert not held.allowed and held.retry_at == pytest.approx(probe_at)
    probe = breaker.gate("up", "r:2", probe_at, lease=30)
    assert probe.allowed and probe.probe
    assert not breaker.gate("up", "r:3", probe_at + 1, lease=30).allowed  # one at a time
    assert fail(breaker, 1, now=probe_at + 1) == probe_at + 1 + 4.0  # delay(2)


def test_answer_returns_the_held_resources_once(breaker: UpstreamBreaker):
    """When the upstream answers, the resources held meanwhile come back, once."""
    fail(breaker, THRESHOLD)
    for resource in ("r:b", "r:a", "r:b"):
        breaker.gate("up", resource, NOW, lease=30)
    assert breaker.answered("up") == ["r:a", "r:b"]
    assert breaker.answered("up") is None
    assert breaker.gate("up", "r:c", NOW, lease=30).allowed


def test_requests_take_the_probe_only_when_overdue(breaker: UpstreamBreaker):
    """A request may probe a failing upstream only once the probe is overdue (no
    refresh took it); then it holds the slot like any probe."""
    probe_at = fail(breaker, THRESHOLD)
    assert not breaker.gate("up", "r:1", probe_at + 5, lease=30, overdue=10).allowed
    assert breaker.gate("up", "r:1", probe_at + 10, lease=30, overdue=10).probe
    assert not breaker.gate("up", "r:2", probe_at + 11, lease=30).allowed


def test_a_held_resource_becomes_the_probe_once_it_is_due(breaker: UpstreamBreaker):
    """With every refresh held, the tick takes one held resource per failing upstream
    when its probe is due, not before, and none while a granted probe runs."""
    probe_at = fail(breaker, THRESHOLD)
    for resource in ("r:a", "r:b"):
        breaker.gate("up", resource, NOW, lease=30)
    assert breaker.due_probes(["up", "other"], probe_at - 0.5) == []
    taken = breaker.due_probes(["up", "other"], probe_at)
    assert len(taken) == 1 and taken[0] in ("r:a", "r:b")
    assert breaker.gate("up", taken[0], probe_at, lease=30).probe
    assert breaker.due_probes(["up"], probe_at + 1) == []  # the probe runs: its lease
    fail(breaker, 1, now=probe_at + 1)
    later = breaker.due_probes(["up"], probe_at + 1 + 4.0)
    assert len(later) == 1 and later != taken  # the other one, the first is no longer held
    assert breaker.due_probes(["up"], probe_at + 100) == []  # nothing held is left
    assert breaker.answered("up") == []


def test_an_upstream_that_is_not_failing_has_no_probe(breaker: UpstreamBreaker):
    """Below the threshold nothing is taken, even with a resource in the held set."""
    fail(breaker, THRESHOLD - 1)
    breaker.redis.sadd(KEYS.held("up"), "r:a")
    assert breaker.due_probes(["up"], NOW + 1000) == []
