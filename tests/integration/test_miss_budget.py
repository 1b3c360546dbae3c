"""Misses spend at most their share of an upstream's request budget: past it a miss with
nothing stored is 503 ``budget_spent`` with Retry-After, and the refreshes' part stays."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from shared.store.budget import UpstreamBudget
from shared.store.keys import Keys
from tests.harness import Demo, Stack
from tests.helpers import PREFIX, VIEW, get

EVENTS = ["launch-party", "team-standup", "board-meeting", "quiet-evening", "conference_2026"]


def test_misses_over_their_share_of_the_budget_are_refused_and_refreshes_keep_theirs(
        env: dict[str, str], demo: Demo, tmp_path: Path):
    """C42_BUDGET_PER_HOUR=3600 (one request a second) and UPSTREAM_MISS_SHARE=0.5: misses
    may spend half a request a second, with a burst of 5. Cold views (two requests each)
    are fetched until that is spent; the next is 503 budget_spent with Retry-After, having
    cost upstream nothing; once that wait is over a cold view is fetched again. What the
    misses spent was charged to the refreshes' bucket too, which still has room."""
    with Stack({**env, "C42_BUDGET_PER_HOUR": "3600", "UPSTREAM_MISS_SHARE": "0.5"},
               tmp_path) as stack:
        url = stack.redis_server()
        stack.worker("misses", concurrency=4)
        api = stack.api()
        answers = []
        for event_id in EVENTS:
            answers.append(get(f"{api}{VIEW}/{event_id}/"))
            if answers[-1].status_code != 200:
                break
        refused = answers[-1]
        assert len(answers) >= 2 and {r.status_code for r in answers[:-1]} == {200}
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "budget_spent"
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 10 and refused.headers["Cache-Control"] == "no-store"
        made = demo.upstream.total_requests()
        assert made <= 5 + len(answers), made  # the burst, and pages over the estimates
        store = redis.Redis.from_url(url)
        spent = store.hgetall(Keys(PREFIX).budget("c42"))
        now_ms = time.time() * 1000
        assert float(spent[b"miss_tat"]) > now_ms and float(spent[b"tat"]) > now_ms
        # The refreshes' bucket (one a second, a burst of 10) has room left.
        assert UpstreamBudget(store, Keys(PREFIX)).spend("c42", "c42:event:x", 1, 1.0,
                                                         time.time()) == 0
        time.sleep(wait + 2)  # its turn, and the next request's too
        assert get(f"{api}{VIEW}/{EVENTS[len(answers) - 1]}/").status_code == 200
