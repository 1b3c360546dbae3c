"""Single flight across processes: one fetch per resource, however many requests wait.

A miss joins the flight of its resource with ``SET lock <token> NX PX <ms> GET``: the first
caller becomes the leader (and enqueues the fetch); every later caller gets the leader's
token back in the same round trip. A flight led by the API holds the lock only for its
waiters' longest wait until the fetch task starts and extends it (``start``): a task
message that never reaches a worker (a worker killed with it, a broker out of memory)
blocks the resource for seconds, not for the fetch's whole time limit.

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
from dataclasses import dataclass

import redis

from shared.errors import CachedProxyError, from_code
from shared.store.keys import Keys

# The fetch task's limits; the lock outlives the task so two fetches never overlap.
FETCH_SOFT_TIME_LIMIT = 25
FETCH_TIME_LIMIT = 30
LOCK_TIMEOUT_MS = (FETCH_TIME_LIMIT + 5) * 1000
RESULT_TTL_MS = 30_000

# allow-oom: the outcome (a few bytes, expiring) must reach the waiters even when Redis
# is out of memory, or they would wait out their timeout for "store full".
_FINISH = """#!lua flags=allow-oom
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if KEYS[3] then redis.call('HDEL', KEYS[3], ARGV[1]) end
return 1
"""


_START = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Outcome:
    """What a flight ended with: ok, or an error code and message."""

    code: str = "ok"
    message: str = ""
    upstream_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    @classmethod
    def failed(cls, error: CachedProxyError) -> Outcome:
        return cls(error.code, error.message, error.upstream_status)

    def error(self) -> CachedProxyError:
        return from_code(self.code, self.message, self.upstream_status)

    def encode(self) -> str:
        return json.dumps(
            {"code": self.code, "message": self.message, "upstream_status": self.upstream_status})

    @classmethod
    def decode(cls, raw: bytes | str) -> Outcome:
        value = json.loads(raw)
        return cls(value["code"], value["message"], value.get("upstream_status"))


@dataclass(frozen=True)
class Flight:
    resource: str
    token: str
    leader: bool


class Flights:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._finish = client.register_script(_FINISH)
        self._start = client.register_script(_START)

    def join(self, resource: str, token: str | None = None, hold_ms: int = LOCK_TIMEOUT_MS
             ) -> Flight:
        """Lead a new flight for the resource, or follow the one under way. A new lock
        is held ``hold_ms`` at first: until the fetch task starts, when it is led by a
        request that enqueues one."""
        token = token or secrets.token_hex(12)
        current = self.redis.set(
            self.keys.lock(resource), token, nx=True, px=hold_ms, get=True
        )
        if current is None:
            return Flight(resource, token, leader=True)
        return Flight(resource, _text(current), leader=False)  # type: ignore[arg-type]

    def start(self, flight: Flight) -> bool:
        """The fetch task begins: hold the lock for the fetch's time limit. False when
        the lock expired while the task was queued and another flight holds it now."""
        return bool(self._start(keys=[self.keys.lock(flight.resource)],
                                args=[flight.token, LOCK_TIMEOUT_MS]))

    def finish(self, flight: Flight, outcome: Outcome, worker: str | None = None) -> None:
        """Publish the outcome to every waiter and release the lock if still ours; the
        ``worker`` that ran it (``track``) no longer does."""
        keys = [self.keys.lock(flight.resource), self.keys.result(flight.resource, flight.token)]
        if worker:
            keys.append(self.keys.running(worker))
        self._finish(keys=keys, args=[flight.token, outcome.encode(), RESULT_TTL_MS])

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
