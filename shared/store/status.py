"""What Redis holds of each upstream's state, read for /admin/upstreams and /metrics
(shared/policy/status.py tells what it means): the breaker's record, the budget's
bucket and the upstream's reported limit, the requests made each minute of the last
hour (two round trips), and the live resources' counts, which the plan task makes from
the whole schedule and each live entry's freshness (``store_live``: a round trip per
1000 live resources, every 15 s in a worker, never in a request).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import redis

from shared.config.settings import Settings
from shared.policy.budget import BURST, HOUR, capacity
from shared.policy.status import (
    Live,
    Upstream,
    described,
    last_hour,
    live_by_upstream,
    minute_of,
)
from shared.store.breaker import THRESHOLD
from shared.store.keys import Keys

PAGE = 1000


def count_spent(pipe: redis.client.Pipeline, keys: Keys, upstream: str, requests: int,
                now: float) -> None:
    """Queue on ``pipe``: ``requests`` made to ``upstream`` now (its minute's count)."""
    pipe.hincrby(keys.spent(upstream), str(minute_of(now)), requests)


def forget_old_counts(client: redis.Redis, keys: Keys, upstreams: Sequence[str],
                      now: float) -> int:
    """Delete the per-minute counts (requests per upstream, answers per view) older than
    the last hour; returns how many. The counts have no TTL, as no key but the cache
    entries has: a Redis at its memory cap evicts only entries."""
    oldest = last_hour(now)[0]
    hashes = [keys.spent(u) for u in upstreams] + [keys.outcomes()]
    with client.pipeline(transaction=False) as pipe:
        for key in hashes:
            pipe.hkeys(key)
        fields = pipe.execute()
    old = {key: [f for f in found if _minute(f) < oldest]
           for key, found in zip(hashes, fields, strict=True)}
    with client.pipeline(transaction=False) as pipe:
        for key, stale in old.items():
            if stale:
                pipe.hdel(key, *stale)
        pipe.execute()
    return sum(len(stale) for stale in old.values())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _minute(field: Any) -> int:
    """The minute a count's field names ("<minute>" or "<minute>|..."); -1 if none."""
    minute = _text(field).partition("|")[0]
    return int(minute) if minute.isdigit() else -1


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def read_upstreams(client: redis.Redis, keys: Keys, names: Sequence[str], now: float
                   ) -> dict[str, Upstream]:
    """Each upstream's breaker, budget and last hour's requests, in one round trip."""
    minutes = last_hour(now)
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.upstream_health(name))
            pipe.hmget(keys.budget(name), ["tat", "remaining", "reset_at"])
            pipe.hmget(keys.spent(name), [str(m) for m in minutes])
        replies = pipe.execute()
    found = {}
    for i, name in enumerate(names):
        health = {_text(k): _text(v) for k, v in replies[3 * i].items()}
        tat, remaining, reset_at = (_number(v) for v in replies[3 * i + 1])
        spent = tuple(int(_number(v) or 0) for v in replies[3 * i + 2])
        probe_at, since = _number(health.get("probe_at")), _number(health.get("since"))
        found[name] = Upstream(
            failures=int(_number(health.get("failures")) or 0),
            failing_since=None if since is None else since / 1000,
            last_error=health.get("error"),
            next_probe=None if probe_at is None else probe_at / 1000,
            paced_for=0.0 if tat is None else tat / 1000 - now,
            spent=spent,
            remaining=None if remaining is None else int(remaining),
            reset_at=reset_at,
        )
    return found


def read_live(client: redis.Redis, keys: Keys, upstream_of: Callable[[str], str],
              now: float) -> dict[str, Live]:
    """Per upstream: its live resources, the most overdue refresh, the stalest entry."""
    scheduled: list[tuple[Any, float]] = client.zrange(keys.schedule(), 0, -1,
                                                       withscores=True)  # type: ignore[assignment]
    due = [(_text(member), at / 1000) for member, at in scheduled]
    owners: dict[str, str] = {}
    for resource, _ in due:
        try:
            owners[resource] = upstream_of(resource)
        except KeyError:  # its kind left the catalogue; it ages out
            continue
    fresh_until: dict[str, float] = {}
    for start in range(0, len(due), PAGE):
        page = [resource for resource, _ in due[start:start + PAGE]]
        with client.pipeline(transaction=False) as pipe:
            for resource in page:
                pipe.hget(keys.entry(resource), "fresh_until")
            values = pipe.execute()
        for resource, value in zip(page, values, strict=True):
            until = _number(value)
            if until is not None:
                fresh_until[resource] = until
    return live_by_upstream(due, fresh_until, owners, now)


def store_live(client: redis.Redis, keys: Keys, names: Sequence[str],
               upstream_of: Callable[[str], str], now: float) -> dict[str, Live]:
    """Count each upstream's live resources, most overdue refresh and stalest live entry
    (a read of the whole schedule and of each live entry's freshness: the plan task's
    work, every 15 s, not a request's) and keep the counts for ``report``."""
    live = read_live(client, keys, upstream_of, now)
    counted = {name: live.get(name, Live(at=now)) for name in names}
    if counted:
        client.hset(keys.live_status(), mapping={
            name: json.dumps([c.resources, c.overdue_s, c.oldest_stale_s, c.at])
            for name, c in counted.items()})
    return counted


def stored_live(client: redis.Redis, keys: Keys, names: Sequence[str]) -> dict[str, Live]:
    """The counts ``store_live`` kept (none yet, or of another shape: Live())."""
    if not names:
        return {}
    found = {}
    for name, value in zip(names, client.hmget(keys.live_status(), list(names)), strict=True):
        try:
            resources, overdue, stale, at = json.loads(value)  # type: ignore[arg-type]
            found[name] = Live(int(resources), float(overdue), float(stale), float(at))
        except (TypeError, ValueError):
            found[name] = Live()
    return found


def report(client: redis.Redis, keys: Keys, settings: Settings, now: float
           ) -> list[dict[str, Any]]:
    """Every upstream of ``settings`` as ``GET /admin/upstreams`` shows it, by name; its
    live resources as the plan task last counted them."""
    names = sorted(settings.upstreams)
    found = read_upstreams(client, keys, names, now)
    live = stored_live(client, keys, names)
    out = []
    for name in names:
        budget = settings.upstreams[name].budget_per_hour
        rate = budget / HOUR if budget > 0 else None
        out.append(described(name, found[name], live.get(name, Live()), budget, THRESHOLD,
                             capacity(rate) / rate if rate else BURST))
    return out

