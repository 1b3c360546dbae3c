"""Liveness records in Redis: which workers beat recently, when beat last ticked.

Workers add themselves on every Celery heartbeat (every 2 s) and leave on shutdown; the
tick task records its time. ``readiness`` reads both and Redis itself in one round trip.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

from shared.store.keys import Keys

WORKER_GONE_AFTER = 10.0  # seconds without a heartbeat


def worker_seen(client: redis.Redis, keys: Keys, hostname: str, now: float) -> None:
    """Note that a worker is alive now (its heartbeat)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.workers(), {hostname: int(now * 1000)})
        pipe.zremrangebyscore(keys.workers(), "-inf", int((now - 3600) * 1000))
        pipe.execute()


def worker_gone(client: redis.Redis, keys: Keys, hostname: str) -> None:
    """Forget a worker that shut down."""
    client.zrem(keys.workers(), hostname)


def ticked(client: redis.Redis, keys: Keys, now: float) -> None:
    """Note that beat's tick ran now."""
    client.set(keys.last_tick(), repr(now))


def readiness(client: redis.Redis, keys: Keys, tick_interval: float,
              now: float | None = None) -> dict[str, Any]:
    """Redis reachable (with Sentinel: the master it is), at least one worker seen
    recently, beat ticking recently."""
    now = time.time() if now is None else now
    tick_late_after = max(5 * tick_interval, 5.0)
    redis_check: dict[str, Any] = {"ok": True}
    try:
        pool = client.connection_pool
        if isinstance(pool, SentinelConnectionPool):  # which master the sentinels name now
            host, port = pool.get_master_address()
            redis_check["master"] = f"{host}:{port}"
        with client.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.workers(), int((now - WORKER_GONE_AFTER) * 1000), "+inf",
                        byscore=True)
            pipe.get(keys.last_tick())
            workers, tick = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return {"status": "not_ready", "checks": {
            "redis": {"ok": False, "error": type(exc).__name__},
            "workers": {"ok": False}, "beat": {"ok": False}}}
    names = sorted(w.decode() if isinstance(w, bytes) else w for w in workers)
    tick_age = None if tick is None else round(now - float(tick), 1)
    checks: dict[str, dict[str, Any]] = {
        "redis": redis_check,
        "workers": {"ok": bool(names), "seen": names},
        "beat": {"ok": tick_age is not None and tick_age <= tick_late_after,
                 "last_tick_s_ago": tick_age},
    }
    ready = all(check["ok"] for check in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}


def main(argv: list[str]) -> int:
    """``python -m shared.store.health beat``: exit 0 while ticks run (a container healthcheck)."""
    from shared.config.settings import load_settings
    from shared.store.client import connect

    if argv != ["beat"]:
        print("usage: python -m shared.store.health beat")
        return 2
    settings = load_settings()
    report = readiness(connect(settings.redis), Keys(settings.redis.key_prefix),
                       settings.refresh.tick_interval)
    print(json.dumps(report["checks"]["beat"]))
    return 0 if report["checks"]["beat"]["ok"] else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
