"""An idle system's log: beat's tick runs several times a second here, and neither beat
nor the worker writes a line per tick at INFO."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from shared.store.keys import Keys
from tests.harness import Stack
from tests.helpers import eventually


def test_ticks_write_no_line_of_their_own_at_info(env: dict[str, str], tmp_path: Path):
    """Ten ticks and more (five a second), nothing claimed: beat's "Sending due task" and
    the worker's "received" and "succeeded" lines of the tick are DEBUG, so not shown at
    INFO; the worker's own lines are its start-up's."""
    keys = Keys("cpidle")
    with Stack({**env, "KEY_PREFIX": keys.prefix, "LOG_LEVEL": "INFO",
                "REFRESH_TICK_INTERVAL": "0.2"}, tmp_path) as stack:
        stack.worker()
        stack.beat()
        client = redis.Redis.from_url(env["REDIS_URL"])
        ticks: list[bytes] = []

        def ticked_ten_times() -> bool:
            tick = client.get(keys.last_tick())
            if tick is not None and tick not in ticks:
                ticks.append(tick)
            return len(ticks) >= 10

        eventually(ticked_ten_times, 20, "ten ticks")
        stack.stop()
    client.delete(keys.last_tick())
    lines = [json.loads(line) for name in ("beat.log", "worker.log")
             for line in (tmp_path / name).read_text().splitlines() if line.startswith("{")]
    shown = [line["event"] for line in lines]
    assert not [e for e in shown if "Sending due task" in e or "cachedproxy.tick" in e]
    assert any("Starting" in e or "beat" in e for e in shown)  # the logs are the right ones
