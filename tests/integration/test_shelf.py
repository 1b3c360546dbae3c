"""While Redis is unreachable, every API process answers the views any of them served
lately: each shelves its copies where the server's other processes read them."""

from __future__ import annotations

from pathlib import Path

import requests

from api.shelf import ENV
from tests.harness import Demo, Stack
from tests.helpers import VIEW

EVENTS = [f"shelved-{n}" for n in range(10)]


def test_views_one_api_process_served_are_answered_by_another_while_redis_is_down(
        env: dict[str, str], demo: Demo, tmp_path: Path):
    """Two API servers sharing one shelf (as a server's processes do): ten views read
    through the first only; with Redis stopped the second answers every one of them from
    the shelf (200, Cache-Status saying so), and a view neither served is 503."""
    for event_id in EVENTS:
        demo.upstream.put_event(event_id, f"Event {event_id}", ["Ada"])
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    with Stack({**env, ENV: str(shelf), "API_WORKERS": "1"}, tmp_path / "logs") as stack:
        stack.redis_server()
        stack.worker()
        first, second = stack.api("first"), stack.api("second")
        bodies = {}
        for event_id in EVENTS:
            r = requests.get(f"{first}{VIEW}/{event_id}/", timeout=15)
            assert r.status_code == 200
            bodies[event_id] = r.content
        assert requests.get(f"{second}{VIEW}/launch-party/", timeout=15).status_code == 200
        stack.stop_redis()
        for event_id in EVENTS:
            r = requests.get(f"{second}{VIEW}/{event_id}/", timeout=15)
            assert r.status_code == 200 and r.content == bodies[event_id], r.text
            assert "detail=store-unavailable" in r.headers["Cache-Status"]
        assert requests.get(f"{second}{VIEW}/launch-party/", timeout=15).status_code == 200
        unseen = requests.get(f"{second}{VIEW}/team-standup/", timeout=15)
        assert unseen.status_code == 503
        assert unseen.json()["error"]["code"] == "store_unavailable"
