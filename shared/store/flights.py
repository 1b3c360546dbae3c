"""Single flight across processes: one fetch per resource, however many requests wait.

A miss joins the flight of its resource in one script: the first caller becomes the
leader (and enqueues the fetch); every later caller gets the leader's token back in the
same round trip. A flight led by the API holds the lock only for its waiters' longest
wait until the fetch task starts and extends it (``start``): a task message that never
reaches a worker (a worker killed with it, a broker out of memory) blocks the resource
for seconds, not for the fetch's whole time limit.

Locks and results carry their deadlines in their values, not as Redis TTLs: under the
``volatile-lru`` memory policy (docs/OPERATIONS.md, "Memory") only keys with a TTL can
be evicted, and only cache entries have one. The locks are
fields of one hash (resource -> "token deadline_ms", by Redis's own clock); a lock past
its deadline counts as free and the tick's ``sweep`` removes it and result lists past
theirs, and the purge generations of resources no flight holds (only a fetch under way
compares against one).

Everyone waits on the flight's result list with ``BLMOVE key key``, which hands every
waiter the same element without consuming it. The fetch task writes the entry first,
then the outcome, then releases the lock with a compare-and-delete, all in one script.

A worker notes the flights it runs (``track``); one killed with flights running (its
main process too, so no one is left to say) fails them when it starts again under the
same name (``fail_abandoned``): waiters get 503 ``fetch_failed`` and the resource is
free at once rather than after the lock's time limit.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shared.errors import CachedProxyError, from_code
from shared.store.keys import Keys

# The fetch task's limits; the lock outlives the task so two fetches never overlap.
FETCH_SOFT_TIME_LIMIT = 25
FETCH_TIME_LIMIT = 30
LOCK_TIMEOUT_MS = (FETCH_TIME_LIMIT + 5) * 1000
RESULT_TTL_MS = 30_000  # an outcome is kept this long for its waiters

# Shared by the scripts: Redis's clock in ms, and the live holder of a lock (or nil).
_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function holder(locks, resource, now)
  local value = redis.call('HGET', locks, resource)
  if not value then return nil end
  local token, deadline = string.match(value, '^(%S+) (%d+)$')
  if token and tonumber(deadline) > now then return token end
  return nil
end
"""

# KEYS: locks, [running]. ARGV: resource, token, hold (ms). The holder's token, or
# false: led (and noted as running, with KEYS[2]).
_JOIN = _HELPERS + """
local now = now_ms()
local current = holder(KEYS[1], ARGV[1], now)
if current then return current end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
if KEYS[2] then redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) end
return false
"""

# KEYS[1]: locks. ARGV: resources. 1 for each one a live flight holds, else 0.
_HELD = _HELPERS + """
local now = now_ms()
local held = {}
for i, resource in ipairs(ARGV) do
  held[i] = holder(KEYS[1], resource, now) and 1 or 0
end
return held
"""

# KEYS[1]: locks. ARGV: resource, token, hold (ms).
_START = _HELPERS + """
local now = now_ms()
local current = holder(KEYS[1], ARGV[1], now)
if current and current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
return 1
"""

# allow-oom: the outcome (a few bytes) must reach the waiters even when Redis is out of
# memory, or they would wait out their timeout for "store full".
# KEYS: locks, result, results (index), [running]. ARGV: resource, token, outcome, keep (ms).
_FINISH = "#!lua flags=allow-oom\n" + _HELPERS + """
local now = now_ms()
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), KEYS[2])
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and string.match(value, '^(%S+)') == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if KEYS[4] then redis.call('HDEL', KEYS[4], ARGV[2]) end
return 1
"""

# KEYS: locks, results (index), generations. Removes locks and result lists past their
# deadlines, and the purge generations of resources no flight holds (a generation matters
# only to a fetch under way, which reads it under the flight's lock; a fetch that starts
# later reads 0 and fetches after the purge); returns how many of each. allow-oom: it
# only frees memory.
_SWEEP = "#!lua flags=allow-oom\n" + _HELPERS + """
local now = now_ms()
local locks = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if not holder(KEYS[1], all[i], now) then
    redis.call('HDEL', KEYS[1], all[i])
    locks = locks + 1
  end
end
local results = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, key in ipairs(results) do
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], key)
end
local generations = 0
for _, resource in ipairs(redis.call('HKEYS', KEYS[3])) do
  if not holder(KEYS[1], resource, now) then
    redis.call('HDEL', KEYS[3], resource)
    generations = generations + 1
  end
end
return {locks, #results, generations}
"""


@dataclass(frozen=True)
class Outcome:
    """What a flight ended with: ok, or an error code and message."""

    code: str = "ok"
    message: str = ""
    upstream_status: int | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the fetch stored data."""
        return self.code == "ok"

    @classmethod
    def failed(cls, error: CachedProxyError) -> Outcome:
        """The outcome of a fetch that failed with ``error``."""
        return cls(error.code, error.message, error.upstream_status, error.retry_after)

    def error(self) -> CachedProxyError:
        """The error the waiters raise (with what upstream said and when to come back)."""
        return from_code(self.code, self.message, self.upstream_status, self.retry_after)

    def encode(self) -> str:
        """The outcome as published on the flight's result key."""
        return json.dumps({"code": self.code, "message": self.message,
                           "upstream_status": self.upstream_status,
                           "retry_after": self.retry_after})

    @classmethod
    def decode(cls, raw: bytes | str) -> Outcome:
        """An outcome read from a result key."""
        value = json.loads(raw)
        return cls(value["code"], value["message"], value.get("upstream_status"),
                   value.get("retry_after"))


@dataclass(frozen=True)
class Flight:
    """One resource's single flight, as joined: its token, and whether we lead it."""

    resource: str
    token: str
    leader: bool


class Flights:
    """The single flights of every process in Redis (the module docstring tells the
    protocol)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._join = client.register_script(_JOIN)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._sweep = client.register_script(_SWEEP)
        self._held = client.register_script(_HELD)

    def held(self, resources: Sequence[str]) -> list[bool]:
        """Whether a live flight holds each resource (joining it would not lead)."""
        return [bool(h) for h in self._held(keys=[self.keys.locks()], args=list(resources))]

    def join(self, resource: str, token: str | None = None, hold_ms: int = LOCK_TIMEOUT_MS,
             worker: str | None = None) -> Flight:
        """Lead a new flight for the resource, or follow the one under way. A new lock
        is held ``hold_ms`` at first: until the fetch task starts, when it is led by a
        request that enqueues one. A ``worker`` leading it runs it at once: it is noted
        as that worker's (``track``) in the same step."""
        token = token or secrets.token_hex(12)
        keys = [self.keys.locks(), *([self.keys.running(worker)] if worker else [])]
        current = self._join(keys=keys, args=[resource, token, hold_ms])
        if current is None:
            return Flight(resource, token, leader=True)
        return Flight(resource, _text(current), leader=False)

    def start(self, flight: Flight) -> bool:
        """The fetch task begins: hold the lock for the fetch's time limit. False when
        the lock expired while the task was queued and another flight holds it now."""
        return bool(self._start(keys=[self.keys.locks()],
                                args=[flight.resource, flight.token, LOCK_TIMEOUT_MS]))

    def finish(self, flight: Flight, outcome: Outcome, worker: str | None = None) -> None:
        """Publish the outcome to every waiter and release the lock if still ours; the
        ``worker`` that ran it (``track``) no longer does."""
        keys = [self.keys.locks(), self.keys.result(flight.resource, flight.token),
                self.keys.results()]
        if worker:
            keys.append(self.keys.running(worker))
        self._finish(keys=keys,
                     args=[flight.resource, flight.token, outcome.encode(), RESULT_TTL_MS])

    def sweep(self) -> tuple[int, int, int]:
        """Remove locks and outcomes past their deadlines, and the purge generations of
        resources no flight holds: (locks, results, generations) removed."""
        locks, results, generations = self._sweep(
            keys=[self.keys.locks(), self.keys.results(), self.keys.generations()])
        return int(locks), int(results), int(generations)

    def track(self, worker: str, flight: Flight) -> None:
        """Note that ``worker`` runs ``flight`` (until it finishes it)."""
        self.redis.hset(self.keys.running(worker), flight.token, flight.resource)

    def fail_abandoned(self, worker: str, outcome: Outcome) -> list[Flight]:
        """Finish every flight a previous run of ``worker`` left running (it was killed
        with them), so their waiters hear now and their locks go."""
        running = self.redis.hgetall(self.keys.running(worker))
        flights = [Flight(_text(resource), _text(token), leader=True)
                   for token, resource in running.items()]
        for flight in flights:
            self.finish(flight, outcome, worker)
        return flights

    def wait(self, flight: Flight, timeout: float, client: redis.Redis | None = None) -> (
        Outcome | None
    ):
        """The flight's outcome, or None after ``timeout`` seconds.

        ``client`` must have a socket timeout longer than ``timeout``.
        """
        key = self.keys.result(flight.resource, flight.token)
        # Redis takes fractional seconds here; redis-py's annotation says int.
        raw = (client or self.redis).blmove(key, key, timeout, "LEFT", "LEFT")  # type: ignore[arg-type]
        return None if raw is None else Outcome.decode(raw)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
