"""What integration tests say of the system under test: the view's path, the answer
expected for a sample event, bounded waits, and /metrics read as numbers. No test
module imports another; they import from here and from tests/harness.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.data import sample_events
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
        schedule.plan(resource, time.time())
