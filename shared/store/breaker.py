"""Per-upstream back-off: while an upstream fails, one refresh a time probes it.

Each upstream's health is a Redis hash (``Keys.upstream_health``): upstream-wide
``failures`` in a row, of any of its resources, and ``probe_at`` (epoch ms), the earliest
time the next probe may go. From ``THRESHOLD`` failures with no answer in between the
upstream is failing (one bad resource among good ones never gets there: their answers
reset the count), and:

- a scheduled refresh asks ``gate`` before fetching. When the probe is due it *is* the
  probe (``probe_at`` moves a lease ahead, so one probe goes at a time); otherwise it is
  *held*: added to the upstream's held set, to be refreshed once the upstream answers.
- a fetch failing the whole upstream (shared/policy/timing.py ``upstream_failing``)
  calls ``failed``: one more failure, and the next probe after a back-off that doubles
  up to ``refresh.probe_max``.
- a fetch the upstream answers (200, 304, 404) calls ``answered``: the health record
  goes, and the held resources come back for a prompt refresh
  (``timing.recovery_plan``).
- beat's tick calls ``due_probes``: for each failing upstream whose probe is due and not
  under way, one held resource is taken out of the held set to be refreshed now, and
  so becomes the probe. The resource that failed the last probe is planned for the next
  one, but anything may keep it from probing (claimed a tick early and held, idle,
  fetched by a miss meanwhile); with every other resource held, no probe would go until
  the long retry, and recovery would wait for it.

A 60 s outage thus costs about one upstream request per back-off interval however
many resources are live, and recovery is noticed within ``refresh.probe_max``. A miss
with nothing stored still asks upstream (a client waits and nothing else can answer
it); a request with stale data to serve asks ``gate`` too, and serves that data unless
its fetch may be the probe (``api/reader.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from shared.store.keys import Keys

THRESHOLD = 3  # upstream-wide failures in a row that make an upstream failing
ERROR_CHARS = 200  # of the last failure's description kept for operators

_GATE = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures < tonumber(ARGV[4]) then return {1, 0} end
local now = tonumber(ARGV[1])
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at') or '0')
if probe_at + tonumber(ARGV[5]) <= now then
  redis.call('HSET', KEYS[1], 'probe_at', now + tonumber(ARGV[2]))
  return {1, 1}
end
redis.call('SADD', KEYS[2], ARGV[3])
if KEYS[3] then redis.call('ZADD', KEYS[3], 'XX', ARGV[6], ARGV[3]) end
return {0, probe_at}
"""

_ANSWERED = """
local failures = redis.call('HGET', KEYS[1], 'failures')
if not failures then return false end
redis.call('DEL', KEYS[1])
local held = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return {tonumber(failures), held}
"""


# KEYS: health, held of each upstream in turn; ARGV: now (ms), threshold.
_DUE_PROBES = """
local now, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = {}
for i = 1, #KEYS, 2 do
  local failures = tonumber(redis.call('HGET', KEYS[i], 'failures') or '0')
  local probe_at = tonumber(redis.call('HGET', KEYS[i], 'probe_at') or '0')
  if failures >= threshold and probe_at <= now then
    local resource = redis.call('SPOP', KEYS[i + 1])
    if resource then table.insert(due, resource) end
  end
end
return due
"""


@dataclass(frozen=True)
class Gate:
    """May this refresh fetch? ``probe``: it is the one probing a failing upstream;
    when not allowed, ``retry_at`` (epoch seconds) is the next probe's time."""

    allowed: bool
    probe: bool = False
    retry_at: float = 0.0


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


class UpstreamBreaker:
    """Each upstream's failing state in Redis, shared by every worker and API process
    (the module docstring tells the protocol)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._gate = client.register_script(_GATE)
        self._answered = client.register_script(_ANSWERED)
        self._due_probes = client.register_script(_DUE_PROBES)

    def gate(self, upstream: str, resource: str, now: float, lease: float,
             overdue: float = 0.0, hold_until: float | None = None) -> Gate:
        """Let a scheduled refresh of ``resource`` fetch, as the probe if the upstream
        is failing and a probe is due (``overdue`` seconds ago at least: requests leave
        the probe to the worker's refreshes unless none came); or hold it back until
        the upstream answers, its schedule moved to ``hold_until`` if given, in the same
        step: moved after, it could undo the replanning of the held resources by a
        probe answered meanwhile (a refresh running beside the probe)."""
        keys = [self.keys.upstream_health(upstream), self.keys.held(upstream)]
        if hold_until is not None:
            keys.append(self.keys.schedule())
        allowed, value = self._gate(
            keys=keys,
            args=[_ms(now), _ms(lease), resource, THRESHOLD, _ms(overdue),
                  _ms(hold_until or 0)],
        )
        if allowed:
            return Gate(True, probe=bool(value))
        return Gate(False, retry_at=int(value) / 1000)

    def failed(self, upstream: str, now: float, delay: Callable[[int], float],
               error: str = "") -> float | None:
        """Count an upstream-wide failure (``error``: what it was, for operators; the
        first failure's time is kept too). Once the upstream is failing, the next probe
        goes ``delay(n)`` seconds after ``now`` (n: failures past the threshold, from 1);
        returns that time, or None while the upstream is not failing yet."""
        key = self.keys.upstream_health(upstream)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "failures", 1)
            pipe.hsetnx(key, "since", _ms(now))
            pipe.hset(key, "error", error[:ERROR_CHARS])
            failures = int(pipe.execute()[0])
        if failures < THRESHOLD:
            return None
        probe_at = now + delay(failures - THRESHOLD + 1)
        self.redis.hset(key, "probe_at", _ms(probe_at))
        return probe_at

    def answered(self, upstream: str,
                 also: Callable[[redis.client.Pipeline], None] | None = None
                 ) -> list[str] | None:
        """The upstream answered: clear its failing state, in one transaction with the
        commands ``also`` queues first. Returns the resources held back meanwhile, or
        None when it was not failing."""
        keys = [self.keys.upstream_health(upstream), self.keys.held(upstream)]
        if also is None:
            reply = self._answered(keys=keys)
        else:
            with self.redis.pipeline(transaction=True) as pipe:
                also(pipe)
                self._answered(keys=keys, client=pipe)
                reply = pipe.execute()[-1]
        if reply is None:
            return None
        failures, held = reply
        if int(failures) < THRESHOLD and not held:
            return None
        return sorted(r.decode() if isinstance(r, bytes) else r for r in held)

    def due_probes(self, upstreams: Sequence[str], now: float) -> list[str]:
        """One held resource of each failing upstream whose probe is due and not under
        way (a granted probe moves ``probe_at`` a lease ahead), taken out of the held
        set: refreshed now, it is the probe."""
        if not upstreams:
            return []
        keys = [key for upstream in upstreams
                for key in (self.keys.upstream_health(upstream), self.keys.held(upstream))]
        due = self._due_probes(keys=keys, args=[_ms(now), THRESHOLD])
        return [r.decode() if isinstance(r, bytes) else r for r in due]
