"""The refresh schedule in Redis: which live resource to refresh when.

A resource joins the live set when it is read a second time within the idle timeout
with its data stored (``record_reads``): a miss's fetch alone does not put it there, so
a client reading thousands of ids once each buys no refreshes, nor one reading ids
upstream does not have, or whose misses were refused, twice. Configured resources are
always live.

``schedule`` scores each live resource by its next refresh time; ``reads`` by when a
client last read it. Beat's tick calls ``claim``: one script, timed by Redis ``TIME``,
that puts configured resources back if they are missing (after Redis lost its data),
drops resources nobody read for the idle timeout (a resource with no read on record
starts that clock now) and the reads of resources never admitted, and leases the ones
due by the next tick by moving their score past the lease, so a second beat or a tick
that overlaps claims nothing twice. Claiming one tick ahead runs a refresh at most one
tick early (refreshes are planned at 80 % of the TTL) instead of up to one tick late.
A refresh that never finishes is claimed again when its lease runs out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis

from shared.policy.freshness import READ_TIME_CONSTANT
from shared.store.breaker import ERROR_CHARS
from shared.store.keys import Keys

_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, lease, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon = now + tonumber(ARGV[4])
local pinned = {}
for i = 5, #ARGV do
  pinned[ARGV[i]] = true
  redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i])
end
local claimed, dropped = {}, 0
local due = redis.call('ZRANGE', KEYS[1], '-inf', horizon, 'BYSCORE', 'LIMIT', 0, limit,
                      'WITHSCORES')
for i = 1, #due, 2 do
  local resource, due_at = due[i], due[i + 1]
  local read = redis.call('ZSCORE', KEYS[2], resource)
  if not read then
    -- No read on record (Redis lost it, or only a fetch touched it): start the clock.
    redis.call('ZADD', KEYS[2], now, resource)
    read = now
  end
  if not pinned[resource] and now - tonumber(read) > idle then
    redis.call('ZREM', KEYS[1], resource)
    redis.call('ZREM', KEYS[2], resource)
    dropped = dropped + 1
  else
    redis.call('ZADD', KEYS[1], 'XX', now + lease, resource)
    table.insert(claimed, resource)
    table.insert(claimed, due_at)
  end
end
-- Reads of resources never admitted (read once) are forgotten after the idle time.
local old = redis.call('ZRANGE', KEYS[2], '-inf', now - idle, 'BYSCORE', 'LIMIT', 0, 1000)
for _, resource in ipairs(old) do
  if not redis.call('ZSCORE', KEYS[1], resource) then redis.call('ZREM', KEYS[2], resource) end
end
return {dropped, claimed}
"""


# A read admits a resource to the live set when it was read before within the idle
# timeout and its data is stored (a 200): one read (a miss) fetches it, a second shows it
# is wanted. Not an id upstream does not have, nor one whose miss was refused. Due at
# once; the refresh skips it if it was just fetched and plans the next one. Each record
# also adds the reads it stands for to the resource's decayed read count (its read rate:
# shared/policy/freshness.py).
# KEYS: reads, schedule, read counts, then each resource's entry. ARGV: now (ms), idle
# (ms), the read count's time constant (ms), then the resources, then their reads.
# Returns how many joined.
_READ = """
local now, idle, tau = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = (#ARGV - 3) / 2
local admitted = 0
for i = 1, n do
  local resource, count = ARGV[3 + i], tonumber(ARGV[3 + n + i])
  local last = tonumber(redis.call('ZSCORE', KEYS[1], resource))
  if last and now - last <= idle and redis.call('HGET', KEYS[3 + i], 'status') == '200' then
    admitted = admitted + redis.call('ZADD', KEYS[2], 'NX', now, resource)
  end
  redis.call('ZADD', KEYS[1], 'GT', now, resource)
  local held, value, at = redis.call('HGET', KEYS[3], resource), 0, now
  if held then
    local sep = string.find(held, '|', 1, true)
    value = tonumber(string.sub(held, 1, sep - 1)) or 0
    at = tonumber(string.sub(held, sep + 1)) or now
  end
  value = value * math.exp(-math.max(now - at, 0) / tau) + count
  redis.call('HSET', KEYS[3], resource, string.format('%.6g|%d', value, math.max(now, at)))
end
return admitted
"""


# A shorter refresh period (a live TTL change) moves later refreshes of one upstream's
# resources into the new period, spread evenly over it.
_PULL_IN = """
local members = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE')
local mine = {}
for _, m in ipairs(members) do
  if string.sub(m, 1, #ARGV[4]) == ARGV[4] then table.insert(mine, m) end
end
for i, m in ipairs(mine) do
  local at = tonumber(ARGV[2]) + math.floor(tonumber(ARGV[3]) * (i - 1) / #mine)
  redis.call('ZADD', KEYS[1], 'XX', at, m)
end
return #mine
"""


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


class Schedule:
    """The refresh schedule in Redis: the live set by due time, reads, failures and
    pacing (the module docstring tells the rules)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._claim = client.register_script(_CLAIM)
        self._pull_in = client.register_script(_PULL_IN)
        self._read = client.register_script(_READ)

    def claim_due(self, limit: int, lease: float, idle: float, pinned: Sequence[str] = (),
                  ahead: float = 0.0) -> tuple[list[tuple[str, float]], int]:
        """Lease up to ``limit`` resources due now or within ``ahead`` seconds (and the
        ``pinned`` ones, which never go idle): each with the time (epoch seconds) it was
        due; and how many idle ones left the live set."""
        dropped, flat = self._claim(
            keys=[self.keys.schedule(), self.keys.reads()],
            args=[limit, _ms(lease), _ms(idle), _ms(ahead), *pinned],
        )
        names = [r.decode() if isinstance(r, bytes) else r for r in flat[0::2]]
        return [(n, float(at) / 1000) for n, at in zip(names, flat[1::2], strict=True)], int(
            dropped)

    def pull_in(self, name_prefix: str, now: float, period: float) -> int:
        """Refreshes of resources named ``name_prefix...`` planned later than one
        ``period`` from ``now`` are moved into it, spread evenly; returns how many."""
        return int(self._pull_in(
            keys=[self.keys.schedule()],
            args=[_ms(now + period), _ms(now), _ms(period), name_prefix],
        ))

    def live(self) -> list[str]:
        """Every live resource."""
        members = self.redis.zrange(self.keys.schedule(), 0, -1)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def note_failure(self, resource: str, error: str = "") -> int:
        """Count a failed refresh and keep its ``error`` (for operators); returns how many
        failed in a row."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.keys.failures(), resource, 1)
            pipe.hset(self.keys.failure_errors(), resource, error[:ERROR_CHARS])
            count, _ = pipe.execute()
        return int(count)

    def postpone(self, resource: str, at: float) -> None:
        """Retry at ``at`` (epoch seconds), if the resource is still live."""
        self.redis.zadd(self.keys.schedule(), {resource: _ms(at)}, xx=True)

    def postpone_each(self, plan: Sequence[tuple[str, float]]) -> None:
        """Refresh each resource at its time (epoch seconds), those still live."""
        if plan:
            self.redis.zadd(self.keys.schedule(), {r: _ms(at) for r, at in plan}, xx=True)

    def pace(self, resource: str, until: float) -> None:
        """The refresh waits for its upstream's budget until ``until``: planned then, and
        reads serve what is stored without asking for one meanwhile."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.schedule(), {resource: _ms(until)}, xx=True)
            pipe.hset(self.keys.paced(), resource, _ms(until))
            pipe.execute()

    def succeeded(self, resource: str, at: float,
                  pipe: redis.client.Pipeline | None = None, admit: bool = True) -> None:
        """A refresh worked: clear its failures and plan the next one (queued on
        ``pipe``, a transaction the caller executes, if given). Not ``admit`` (a miss's
        fetch): planned only if live already; reads admit it (``record_reads``)."""
        if pipe is not None:
            pipe.hdel(self.keys.failures(), resource)
            pipe.hdel(self.keys.failure_errors(), resource)
            pipe.hdel(self.keys.paced(), resource)
            pipe.zadd(self.keys.schedule(), {resource: _ms(at)}, xx=not admit)
            return
        with self.redis.pipeline(transaction=True) as own:
            self.succeeded(resource, at, own, admit)
            own.execute()

    def drop(self, resource: str) -> None:
        """The resource is gone upstream: stop refreshing it."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.schedule(), resource)
            pipe.zrem(self.keys.reads(), resource)
            pipe.hdel(self.keys.failures(), resource)
            pipe.hdel(self.keys.failure_errors(), resource)
            pipe.hdel(self.keys.paced(), resource)
            pipe.execute()

    def backing_off_each(self, resources: Sequence[str], now: float) -> list[bool]:
        """For each resource: it failed its last refresh and its retry is not due yet,
        or its refresh waits for its upstream's budget."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.failures(), list(resources))
            pipe.zmscore(self.keys.schedule(), list(resources))
            pipe.hmget(self.keys.paced(), list(resources))
            failures, retry_at, paced = pipe.execute()
        return [
            (count is not None and int(count) > 0 and at is not None and at > _ms(now))
            or (until is not None and int(until) > _ms(now))
            for count, at, until in zip(failures, retry_at, paced, strict=True)
        ]

    def replan(self, plan: Sequence[tuple[str, float]]) -> None:
        """Move live resources' next refreshes to the given times (epoch seconds), and
        forget their failures; resources no longer live are left out."""
        if not plan:
            return
        with self.redis.pipeline(transaction=True) as pipe:
            for resource, at in plan:
                pipe.zadd(self.keys.schedule(), {resource: _ms(at)}, xx=True)
            pipe.hdel(self.keys.failures(), *[resource for resource, _ in plan])
            pipe.hdel(self.keys.failure_errors(), *[resource for resource, _ in plan])
            pipe.execute()

    def record_reads(self, pipe: redis.client.Pipeline, resources: Sequence[str], now: float,
                     idle: float, counts: Sequence[int] | None = None) -> None:
        """Queue 'read at ``now``' for resources on a pipeline the caller executes,
        standing for ``counts`` reads each (one each if not given); one read before
        within ``idle`` seconds admits a resource whose data is stored to the live set,
        due now (its refresh then plans the next one)."""
        if resources:
            reads = list(counts) if counts is not None else [1] * len(resources)
            self._read(keys=[self.keys.reads(), self.keys.schedule(), self.keys.read_counts(),
                             *(self.keys.entry(r) for r in resources)],
                       args=[_ms(now), _ms(idle), _ms(READ_TIME_CONSTANT), *resources, *reads],
                       client=pipe)
