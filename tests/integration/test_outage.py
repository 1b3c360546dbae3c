"""An upstream outage under the default back-off: clients get the last good data
throughout, and once the upstream answers again the first refresh goes within one probe
interval and every live resource is fresh again within 10 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.config.settings import Settings
from shared.store.entry import Entry
from shared.store.keys import Keys
from tests.harness import Demo, Stack
from tests.helpers import VIEW, eventually

KEYS = Keys("cpoutage")
EVENTS = [f"down-{i}" for i in range(10)]
RESOURCES = [f"c42:{kind}:{e}" for e in EVENTS for kind in ("event", "subscriptions")]


@pytest.fixture
def system(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Stack]]:
    """Redis, a worker, beat and the API with the default back-off and stale windows;
    a short TTL, so that every resource is refreshed (and held) during the outage."""
    with Stack({**env, "KEY_PREFIX": KEYS.prefix, "CACHE_TTL": "4", "GITHUB_TTL": "3600"},
               tmp_path) as stack:
        stack.redis_server()
        stack.worker()
        stack.beat()
        yield stack.api(), stack


def test_every_resource_is_fresh_within_10_s_after_an_outage(system, demo: Demo):
    api, stack = system
    defaults = Settings().refresh
    for event in EVENTS:
        demo.upstream.put_event(event, f"Event {event}", ["Ada"])
        assert requests.get(f"{api}{VIEW}/{event}/", timeout=15).status_code == 200
    statuses: list[int] = []
    reading = threading.Event()

    def read() -> None:  # every view four times a second
        with requests.Session() as session:
            while not reading.is_set():
                for event in EVENTS:
                    statuses.append(session.get(f"{api}{VIEW}/{event}/", timeout=15).status_code)
                reading.wait(0.25)

    reader = threading.Thread(target=read)
    reader.start()
    store = stack.store
    try:
        demo.upstream.set_fault_from({"mode": "error", "status": 503})
        # Two probe intervals and more: every resource's refresh is held by then.
        eventually(lambda: store.scard(KEYS.held("c42")) >= len(RESOURCES) - 2,
                   30, "the refreshes held while the upstream fails")
        time.sleep(2 * defaults.probe_max)
        demo.upstream.set_fault(None)
        ended = time.time()

        def checked() -> list[float]:
            with store.pipeline(transaction=False) as pipe:
                for resource in RESOURCES:
                    pipe.hgetall(KEYS.entry(resource))
                entries = [Entry.from_fields(fields) for fields in pipe.execute()]
            return [e.checked_at if e is not None else 0.0 for e in entries]

        eventually(lambda: max(checked()) > ended, defaults.probe_max + 2,
                   "the first refresh after the outage, within a probe interval")
        eventually(lambda: min(checked()) > ended, 10, "every resource refreshed")
    finally:
        reading.set()
        reader.join(20)
    assert statuses and set(statuses) == {200}
