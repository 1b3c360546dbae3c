"""What the status page shows (api/status_page.py), read from Redis in a few round
trips: each upstream's state (shared/store/status.py), the cache's last hour of
outcomes by minute (api/tally.py), the refresh lag, Redis's memory, workers and beat."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import redis

from shared.config.settings import Settings
from shared.policy.status import (
    cache_minute,
    hottest,
    last_hour,
    quantile,
    ratio,
    rfc3339,
)
from shared.store.health import readiness
from shared.store.keys import Keys
from shared.store.status import report
from shared.telemetry.metrics import LAG_BUCKETS, SEP, as_text, cumulative


def read_outcomes(client: redis.Redis, keys: Keys, now: float) -> list[dict[str, int]]:
    """Each minute of the last hour's cache outcomes, oldest first, as
    ``{"<view>|<outcome>": n}`` (api/tally.py)."""
    minutes = last_hour(now)
    by_minute: list[dict[str, int]] = [{} for _ in minutes]
    for field, value in client.hgetall(keys.outcomes()).items():
        minute, _, rest = as_text(field).partition(SEP)
        i = int(minute) - minutes[0] if minute.isdigit() else -1
        if 0 <= i < len(minutes):
            by_minute[i][rest] = int(value)
    return by_minute


def overview(client: redis.Redis, keys: Keys, settings: Settings, now: float
             ) -> dict[str, Any]:
    """What the status page shows (api/status_page.py), as JSON: each upstream's state,
    the cache's last hour, the refresh lag, Redis's memory, workers and beat."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.metrics())
        pipe.info("memory")
        pipe.info("stats")
        metrics, memory, stats = pipe.execute()
    raw = {as_text(k): as_text(v) for k, v in metrics.items()}
    checks: dict[str, dict[str, int]] = {}
    lag: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        name, *labels = field.split(SEP)
        if name == "check_requests" and len(labels) == 2:
            checks.setdefault(labels[0], {})[labels[1]] = int(value)
        elif name == "lag_bucket" and len(labels) == 2:
            lag.setdefault(labels[0], {})[labels[1]] = int(value)
    upstreams = report(client, keys, settings, now)
    for row in upstreams:
        found = checks.get(row["upstream"], {})
        row["checks"] = {"change": found.get("change", 0), "no_change": found.get("no_change", 0)}
        buckets = [(float(le), n) for le, n in cumulative(lag.get(row["upstream"], {}),
                                                          LAG_BUCKETS)]
        row["refresh_lag_s"] = {"p50": quantile(0.5, buckets), "p99": quantile(0.99, buckets),
                                "refreshes": int(buckets[-1][1])}
    minutes = read_outcomes(client, keys, now)
    by_minute = [cache_minute(counts) for counts in minutes]
    answers = sum(m.answers for m in by_minute)
    return {
        "at": rfc3339(now),
        "upstreams": upstreams,
        "cache": {
            "answers_last_hour": answers,
            "hit_ratio": ratio(sum(m.hits for m in by_minute), answers),
            "stale_ratio": ratio(sum(m.stale for m in by_minute), answers),
            "misses_last_hour": sum(m.misses for m in by_minute),
            "by_minute": [dataclasses.asdict(m) for m in by_minute],
            "hottest_views": [{"view": v, "answers": n} for v, n in hottest(minutes, 10)],
        },
        "redis": {"used_memory_bytes": int(memory.get("used_memory", 0)),
                  "max_memory_bytes": int(memory.get("maxmemory", 0)),
                  "evicted_keys": int(stats.get("evicted_keys", 0))},
        "health": readiness(client, keys, settings.refresh.tick_interval, now)["checks"],
    }


class Status:
    """The status of one deployment, read with the settings in force at each call."""

    def __init__(self, client: redis.Redis, keys: Keys, current: Callable[[], Settings]
                 ) -> None:
        self.client, self.keys, self.current = client, keys, current

    def upstreams(self, now: float) -> list[dict[str, Any]]:
        """Each upstream's state (``GET /admin/upstreams``)."""
        return report(self.client, self.keys, self.current(), now)

    def overview(self, now: float) -> dict[str, Any]:
        """The status page's figures (``GET /admin/status``)."""
        return overview(self.client, self.keys, self.current(), now)
