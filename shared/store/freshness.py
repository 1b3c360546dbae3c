"""What budget plans are made of, in Redis: each live resource's recent checks (its
change rate is estimated from them), its read rate, the TTL its upstream's plan gives
it, and each upstream's last plan. The rules are in shared/policy/freshness.py; the
API counts reads (shared/store/schedule.py, ``record_reads``), refreshes record checks
(worker/refresh.py), the plan task writes the rest (worker/planning.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.policy.freshness import Check, read_rate
from shared.store.keys import Keys


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Checks:
    """A resource's checks as stored: requests its last refresh took, when upstream
    last confirmed its data (epoch seconds), and its recent checks, oldest first."""

    requests: int = 1
    checked_at: float = 0.0
    history: tuple[Check, ...] = ()

    def encode(self) -> str:
        """``<requests>|<checked at>|<interval><+ changed, - not>,...``"""
        history = ",".join(f"{c.interval:.1f}{'+' if c.changed else '-'}" for c in self.history)
        return f"{self.requests}|{self.checked_at:.3f}|{history}"

    @classmethod
    def decode(cls, value: Any) -> Checks:
        """The stored form back; an empty ``Checks`` for a missing or garbled one."""
        if value is None:
            return cls()
        try:
            requests, checked_at, history = _text(value).split("|")
            return cls(int(requests), float(checked_at), tuple(
                Check(float(item[:-1]), item[-1] == "+") for item in history.split(",") if item))
        except ValueError:
            return cls()


@dataclass(frozen=True)
class Known:
    """What a refresh knows of a resource's plan: the TTL its upstream's plan gives it
    (None: the upstream's own) and its checks so far."""

    ttl: float | None
    checks: Checks


class FreshnessStore:
    """The plans' data in Redis (the module docstring tells what is kept)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def known(self, resource: str) -> Known:
        """A resource's planned TTL and checks, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.planned(), resource)
            pipe.hget(self.keys.checks(), resource)
            planned, checks = pipe.execute()
        return Known(float(planned) if planned is not None else None, Checks.decode(checks))

    def record(self, pipe: redis.client.Pipeline, resource: str, checks: Checks) -> None:
        """Queue a resource's checks on ``pipe`` (the refresh's own transaction)."""
        pipe.hset(self.keys.checks(), resource, checks.encode())

    def observed(self, resources: Sequence[str], now: float
                 ) -> list[tuple[Checks, float, float | None]]:
        """For each resource: its checks, its reads a second and its planned TTL."""
        if not resources:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.checks(), list(resources))
            pipe.hmget(self.keys.read_counts(), list(resources))
            pipe.hmget(self.keys.planned(), list(resources))
            checks, counts, planned = pipe.execute()
        return [(Checks.decode(c), _reads(n, now), float(p) if p is not None else None)
                for c, n, p in zip(checks, counts, planned, strict=True)]

    def apply(self, upstream: str, ttls: Mapping[str, float], clear: Sequence[str],
              moves: tuple[Mapping[str, float], Mapping[str, float]],
              summary: Mapping[str, Any]) -> None:
        """Store an upstream's plan in one transaction: the planned TTLs, those cleared
        (back on the upstream's TTL), next refreshes moved (epoch seconds): those to
        come earlier (only ever earlier) and those to come later (only ever later, so
        no back-off or wait for the budget is cut short), of live resources only; and
        the summary."""
        earlier, later = moves
        with self.redis.pipeline(transaction=True) as pipe:
            if ttls:
                pipe.hset(self.keys.planned(), mapping={r: f"{t:.1f}" for r, t in ttls.items()})
            if clear:
                pipe.hdel(self.keys.planned(), *clear)
            for moved, direction in ((earlier, {"lt": True}), (later, {"gt": True})):
                if moved:
                    pipe.zadd(self.keys.schedule(),
                              {r: round(at * 1000) for r, at in moved.items()},
                              xx=True, **direction)
            pipe.hset(self.keys.plans(), upstream, json.dumps(summary))
            pipe.execute()

    def prune(self, live: set[str]) -> int:
        """Forget the checks, read counts and planned TTLs of resources no longer live;
        returns how many fields went."""
        gone = 0
        for key in (self.keys.checks(), self.keys.read_counts(), self.keys.planned()):
            stale = [f for f in map(_text, self.redis.hkeys(key)) if f not in live]
            for start in range(0, len(stale), 1000):
                gone += int(self.redis.hdel(key, *stale[start:start + 1000]))
        return gone

    def summaries(self) -> dict[str, Any]:
        """Each upstream's last plan summary, by name."""
        return {_text(k): json.loads(v) for k, v in self.redis.hgetall(self.keys.plans()).items()}


def _reads(value: Any, now: float) -> float:
    """Reads a second from a stored ``<decayed count>|<updated ms>``; 0 for none."""
    if value is None:
        return 0.0
    try:
        decayed, updated = _text(value).split("|")
        return read_rate(float(decayed), float(updated) / 1000, now)
    except ValueError:
        return 0.0
