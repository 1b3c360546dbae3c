"""An upstream with all of its max_in_flight taken: reads are answered from what is
stored, and nothing waits on the worker for a slot."""

from __future__ import annotations

import time
from pathlib import Path

from tests.harness import Demo, Stack
from tests.helpers import PREFIX, VIEW, eventually, get, make_live


def test_a_stale_read_of_a_busy_upstream_is_answered_and_left_to_the_schedule(
        env: dict[str, str], demo: Demo, tmp_path: Path):
    """UPSTREAM_MAX_IN_FLIGHT=1 and an upstream answering in 3 s: the refreshes of two
    views (four resources) queue for the one slot. A read of a view gone stale is
    answered at once from the stale copy, and the fetch it asks for in the background
    does not wait for a slot in the worker: it is left to the schedule, as the worker's
    log says."""
    with Stack({**env, "CACHE_TTL": "2", "REFRESH_TICK_INTERVAL": "0.25",
                "UPSTREAM_MAX_IN_FLIGHT": "1"}, tmp_path) as stack:
        stack.redis_server()
        stack.worker("busy", concurrency=4)
        stack.beat()
        api = stack.api()
        for event_id in ("launch-party", "team-standup"):
            assert get(f"{api}{VIEW}/{event_id}/").status_code == 200
        make_live(stack.store, PREFIX, "launch-party", "team-standup")  # as read again
        demo.upstream.set_latency(3)
        demo.upstream.peak_in_flight(reset=True)
        try:
            eventually(lambda: demo.upstream.peak_in_flight() >= 1, 10,
                       "a refresh holds the slot")

            def stale() -> bool:
                started = time.monotonic()
                r = get(f"{api}{VIEW}/team-standup/")
                assert r.status_code == 200 and time.monotonic() - started < 1, r.text
                return "fwd=stale" in r.headers["Cache-Status"]

            eventually(stale, 10, "the view served stale")
            eventually(lambda: "background fetch left to the schedule: upstream busy" in (
                stack.logs / "busy.log").read_text(), 10, "the background fetch not waiting")
            assert demo.upstream.peak_in_flight() == 1
        finally:
            demo.upstream.set_latency(0)
