"""The live set admits what is read again: a view read once is fetched once and never
refreshed ahead; one read a second time is refreshed before it expires."""

from __future__ import annotations

import time
from pathlib import Path

from tests.harness import Demo, Stack
from tests.helpers import VIEW, eventually, get

ONCE = [f"read-once-{n}" for n in range(20)]


def test_views_read_once_buy_no_refreshes_and_one_read_again_is_refreshed_ahead(
        env: dict[str, str], demo: Demo, tmp_path: Path):
    """CACHE_TTL=2 (reads recorded at most every 1.6 s per process), beat ticking every
    0.25 s: 20 views read once cost their first fetches and nothing more meanwhile,
    while a view read again after 1.8 s (its second recorded read) is refreshed ahead,
    with nobody reading it."""
    for event_id in [*ONCE, "read-twice"]:
        demo.upstream.put_event(event_id, f"Event {event_id}", ["Ada"])
    with Stack({**env, "CACHE_TTL": "2", "REFRESH_TICK_INTERVAL": "0.25"}, tmp_path) as stack:
        stack.redis_server()
        stack.worker("admission", concurrency=4)
        stack.beat()
        api = stack.api()
        assert get(f"{api}{VIEW}/read-twice/").status_code == 200
        for event_id in ONCE:
            assert get(f"{api}{VIEW}/{event_id}/").status_code == 200
        first = sum(demo.upstream.count("event", e) for e in ONCE)
        assert first == len(ONCE)
        time.sleep(1.8)  # past the read period: the next read is recorded
        assert get(f"{api}{VIEW}/read-twice/").status_code == 200
        before = demo.upstream.count("event", "read-twice")
        eventually(lambda: demo.upstream.count("event", "read-twice") >= before + 2, 10,
                   "the view read twice refreshed ahead, again and again")
        assert sum(demo.upstream.count("event", e) for e in ONCE) == first
