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


@dataclass(frozen=True)
class Lengthened:
    """A resource whose TTL grew: the check its data is from (epoch seconds), the
    data's new freshness, and when its next refresh now comes."""

    checked_at: float
    fresh_until: float
    due: float


# A refresh moved later leaves the data it follows stale before it comes, and reads of
# stale data ask for a refresh of their own: so the data's freshness moves with it, in
# the same script, if the entry is still the one checked then (a refresh since planned
# its own next one) and only ever later. Its key is kept as long past the new freshness
# as a save keeps it.
# KEYS: schedule, then each resource's entry. ARGV: seconds kept past freshness, then
# for each resource: name, checked at, new fresh until (epoch seconds), next refresh (ms).
_LENGTHEN = """
local keep = tonumber(ARGV[1])
local moved = 0
for i = 2, #KEYS do
  local base = 2 + (i - 2) * 4
  local resource, checked = ARGV[base], tonumber(ARGV[base + 1])
  local fresh, due = tonumber(ARGV[base + 2]), ARGV[base + 3]
  local entry = redis.call('HMGET', KEYS[i], 'status', 'checked_at', 'fresh_until')
  if entry[1] == '200' and math.abs(tonumber(entry[2]) - checked) < 0.01
      and tonumber(entry[3]) < fresh then
    redis.call('HSET', KEYS[i], 'fresh_until', string.format('%.3f', fresh))
    redis.call('PEXPIREAT', KEYS[i], math.floor((fresh + keep) * 1000))
    redis.call('ZADD', KEYS[1], 'XX', 'GT', due, resource)
    moved = moved + 1
  end
end
return moved
"""


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class FreshnessStore:
    """The plans' data in Redis (the module docstring tells what is kept)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._lengthen = client.register_script(_LENGTHEN)

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
              earlier: Mapping[str, float], later: Mapping[str, Lengthened], keep: float,
              summary: Mapping[str, Any]) -> None:
        """Store an upstream's plan in one transaction: the planned TTLs, those cleared
        (back on the upstream's TTL), next refreshes moved ``earlier`` (epoch seconds;
        only ever earlier) and ``later`` with their data's freshness (only ever later,
        so no back-off or wait for the budget is cut short), of live resources only;
        and the summary. ``keep``: seconds an entry is kept past its freshness."""
        with self.redis.pipeline(transaction=True) as pipe:
            if ttls:
                pipe.hset(self.keys.planned(), mapping={r: f"{t:.1f}" for r, t in ttls.items()})
            if clear:
                pipe.hdel(self.keys.planned(), *clear)
            if earlier:
                pipe.zadd(self.keys.schedule(), {r: _ms(at) for r, at in earlier.items()},
                          xx=True, lt=True)
            names = list(later)
            for start in range(0, len(names), 500):
                chunk = names[start:start + 500]
                self._lengthen(
                    keys=[self.keys.schedule(), *(self.keys.entry(r) for r in chunk)],
                    args=[keep, *(value for r in chunk for value in (
                        r, later[r].checked_at, later[r].fresh_until, _ms(later[r].due)))],
                    client=pipe)
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
