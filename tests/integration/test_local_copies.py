"""Hits from each API process's own copy, kept coherent by Redis (CLIENT TRACKING):
fresh views are served without a Redis command, and any change of their entries in
Redis, by whoever makes it, is seen by the next request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from shared.config.settings import Settings
from shared.store.keys import Keys
from tests.harness import Stack
from tests.helpers import VIEW, eventually, expected

PREFIX = "cplocal"
EVENT = f"{VIEW}/launch-party/"


@pytest.fixture
def stack(env: dict[str, str], settings: Settings, tmp_path: Path
          ) -> Iterator[tuple[str, redis.Redis]]:
    """A Redis of its own (so its command counts are this test's), a worker, the API."""
    with Stack({**env, "KEY_PREFIX": PREFIX}, tmp_path) as processes:
        url = processes.redis_server()
        processes.worker("local", concurrency=1)
        server = threaded_wsgi_server(app_from_settings(
            settings.replace(redis={"url": url, "key_prefix": PREFIX})), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", redis.Redis.from_url(url)
        finally:
            server.shutdown()
            server.server_close()


def reads(store: redis.Redis) -> int:
    """Entry reads Redis has answered (HGETALL)."""
    return store.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0)


def get(url: str, **headers: str) -> requests.Response:
    r = requests.get(url, headers=headers, timeout=15)
    assert r.status_code in (200, 304), r.text
    return r


def test_fresh_hits_need_no_redis_and_every_change_is_seen_at_once(stack):
    api, store = stack
    first = get(api + EVENT)
    get(api + EVENT)  # read from Redis with nothing changing: the copy becomes current
    before = reads(store)
    hits = [get(api + EVENT) for _ in range(20)]
    assert reads(store) == before  # not one entry read
    assert {h.content for h in hits} == {first.content}
    assert {h.headers["ETag"] for h in hits} == {first.headers["ETag"]}
    assert all(h.headers["Cache-Status"].startswith("cachedproxy; hit; ttl=") for h in hits)
    assert get(api + EVENT, **{"If-None-Match": first.headers["ETag"]}).status_code == 304

    # Another writer makes the event stale: the very next request sees it and revalidates.
    keys = Keys(PREFIX)
    store.hset(keys.entry("c42:event:launch-party"), "fresh_until", "0")
    after = get(api + EVENT)
    assert not after.headers["Cache-Status"].startswith("cachedproxy; hit")
    assert reads(store) > before

    # Entries deleted behind its back: the next request is a miss, with the same data.
    store.delete(keys.entry("c42:event:launch-party"), keys.entry("c42:subscriptions:launch-party"))
    again = get(api + EVENT)
    assert again.headers["Cache-Status"].startswith("cachedproxy; fwd=miss")
    assert again.json() == expected("launch-party")


def test_without_the_tracking_connection_hits_read_redis_until_it_is_back(stack):
    api, store = stack
    get(api + EVENT)
    get(api + EVENT)
    tracking = [c for c in store.client_list() if "t" in c["flags"]]
    assert len(tracking) == 1  # one tracking connection per API process
    store.client_kill_filter(_id=tracking[0]["id"])
    before = reads(store)
    r = get(api + EVENT)
    assert r.json() == expected("launch-party") and reads(store) == before + 2

    def served_locally() -> bool:
        """Tracking is back (tried again after 0.5 s) and a read made the copy current."""
        get(api + EVENT)
        settled = reads(store)
        return all(get(api + EVENT).ok for _ in range(5)) and reads(store) == settled

    eventually(served_locally, 5, "hits from the copy again")
    assert len([c for c in store.client_list() if "t" in c["flags"]]) == 1
