"""What integration tests say of the system under test: the view's path, the answer
expected for a sample event, bounded waits, and /metrics read as numbers. No test
module imports another; they import from here and from tests/harness.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.data import sample_events
from shared.store.flights import Flights
from shared.store.keys import Keys
from shared.store.schedule import Schedule

PREFIX = "cptest"  # the key prefix of the session's system (tests/integration/conftest.py)
SAMPLES = sample_events()
VIEW = "/events-with-subscriptions"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def expected(event_id: str) -> dict[str, object]:
    """The view of a sample event as the demo upstream holds it."""
    event = SAMPLES[event_id]
    return {"id": event.id, "title": event.title,
            "names": [s.first_name for s in event.subscribers]}


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=20)


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait, bounded, for a state only observable by looking (a Redis key, a counter)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def expire(store, event_id: str, prefix: str = PREFIX) -> None:
    """Make the cached entries of an event stale, as time would."""
    keys = Keys(prefix)
    for kind in ("event", "subscriptions"):
        store.hset(keys.entry(f"c42:{kind}:{event_id}"), "fresh_until", "0")


def scrape(api: str) -> Samples:
    """Every sample of the API's /metrics, by name and labels."""
    r = requests.get(f"{api}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def make_live(store: redis.Redis, prefix: str, *event_ids: str) -> None:
    """Put these events' views on the refresh schedule, due now, as their second read
    would (a test cannot wait out an API process's read period, nor know whether an
    earlier test's read started it)."""
    schedule = Schedule(store, Keys(prefix))
    for resource in (f"c42:{kind}:{e}" for e in event_ids for kind in ("event", "subscriptions")):
        schedule.succeeded(resource, time.time())


def claim(schedule: Schedule, limit: int, lease: float, idle: float,
            pinned: Sequence[str] = (), ahead: float = 0.0) -> tuple[list[str], int]:
    """``Schedule.claim_due`` without the due times: the resources leased, and how many
    idle ones left."""
    due, dropped = schedule.claim_due(limit, lease, idle, pinned, ahead)
    return [resource for resource, _ in due], dropped


def lock_holder(flights: Flights, resource: str) -> str | None:
    """The token of the flight holding the resource's lock, if one does."""
    value = flights.redis.hget(flights.keys.locks(), resource)
    if value is None:
        return None
    token, _, deadline = (value.decode() if isinstance(value, bytes) else value).partition(" ")
    now_s, now_us = flights.redis.time()
    return token if int(deadline) > now_s * 1000 + now_us // 1000 else None
