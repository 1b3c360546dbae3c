"""``python -m benchmarks.status``: what the operator's figures cost at scale.

A private redis-server holds N live resources (schedule entries and cache entries, all
Calendar42 events); reported, best of three, per N:

- ``store_live``: the plan task's count of each upstream's live resources, most overdue
  refresh and stalest live entry (a read of the whole schedule and each live entry's
  freshness), every ``refresh.plan_interval``;
- ``report``: what ``GET /admin/upstreams`` and each ``/metrics`` scrape read;
- ``overview``: what the status page and ``GET /admin/status`` read, every 5 s a page.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from launcher.services import free_port
from shared.config.settings import load_settings
from shared.store.keys import Keys
from shared.store.overview import overview
from shared.store.status import report, store_live
from shared.upstreams.registry import upstream_of
from tests.harness import start_redis, stop


def best_ms(call: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(min(times) * 1000, 1)


def fill(client: redis.Redis, keys: Keys, n: int, now: float) -> None:
    """N live events, due in 30 s, their entries fresh for 40 s."""
    client.flushdb()
    with client.pipeline(transaction=False) as pipe:
        for i in range(n):
            resource = f"c42:event:e{i}"
            pipe.zadd(keys.schedule(), {resource: int((now + 30) * 1000)})
            pipe.hset(keys.entry(resource), mapping={"fresh_until": now + 40,
                                                     "checked_at": now})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.status", description=__doc__)
    parser.add_argument("--live", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args()
    port = free_port()
    proc = start_redis(Path(tempfile.mkdtemp(prefix="cachedproxy-status-")), port, False)
    try:
        client = redis.Redis(port=port)
        keys = Keys("bench")
        settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
        names = sorted(settings.upstreams)
        now = time.time()
        results = {}
        for n in args.live:
            fill(client, keys, n, now)
            results[f"{n}_live"] = {
                "store_live_ms": best_ms(lambda: store_live(client, keys, names, upstream_of,
                                                            now)),
                "report_ms": best_ms(lambda: report(client, keys, settings, now)),
                "overview_ms": best_ms(lambda: overview(client, keys, settings, now)),
            }
        print(json.dumps(results, indent=2))
    finally:
        stop([proc])


if __name__ == "__main__":
    main()
