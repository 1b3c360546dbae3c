"""Cache entries in Redis: read many in one round trip, write one atomically."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis

from shared.errors import CachedProxyError, StoreFull, StoreUnavailable
from shared.store.entry import Entry
from shared.store.keys import Keys

# A 304 touches only the timestamps, and only of an entry that still exists and was
# not purged since the fetch began (KEYS[2], the generations, ARGV[4]; '' unguarded).
_REVALIDATE = """
if ARGV[4] ~= '' and (redis.call('HGET', KEYS[2], ARGV[5]) or '0') ~= ARGV[4] then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'checked_at', ARGV[1], 'fresh_until', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""

# Replace an entry whole, unless it was purged since the fetch began. KEYS: the entry,
# the generations. ARGV: resource, generation ('' unguarded), expire at (ms), then the
# fields and values.
_SAVE = """
if ARGV[2] ~= '' and (redis.call('HGET', KEYS[2], ARGV[1]) or '0') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""


def store_error(exc: redis.RedisError) -> CachedProxyError:
    """What a Redis error means to a client: full (out of memory) or unavailable
    (unreachable, timing out, loading, or read-only during a failover)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return StoreFull("cache store is full (Redis maxmemory reached)")
    return StoreUnavailable(f"cache store unavailable: {type(exc).__name__}")


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn a Redis error into ``StoreFull`` or ``StoreUnavailable`` (503)."""
    try:
        yield
    except redis.RedisError as exc:
        raise store_error(exc) from exc


def _ms(epoch_seconds: float) -> int:
    return math.ceil(epoch_seconds * 1000)


class EntryStore:
    """The cache entries in Redis: read, saved with their metadata in one transaction,
    revalidated on a 304, purged."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._revalidate = client.register_script(_REVALIDATE)
        self._save = client.register_script(_SAVE)

    def read(
        self,
        resources: Sequence[str],
        also: Callable[[redis.client.Pipeline], None] | None = None,
    ) -> list[Entry | None]:
        """The entries of several resources in one round trip, with any commands ``also``
        adds to the same pipeline."""
        pipe = self.redis.pipeline(transaction=False)
        for resource in resources:
            pipe.hgetall(self.keys.entry(resource))
        if also is not None:
            also(pipe)
        # What ``also`` adds is best effort (recording a read must not fail a hit when
        # Redis is out of memory); the entries' own replies must be good.
        replies = pipe.execute(raise_on_error=False)[: len(resources)]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [Entry.from_fields(fields) for fields in replies]

    def read_for_fetch(self, resource: str) -> tuple[Entry | None, int]:
        """A resource's entry and its purge generation (``generation``), read in one
        round trip before fetching it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.entry(resource))
        pipe.hget(self.keys.generations(), resource)
        fields, generation = pipe.execute()
        return Entry.from_fields(fields), int(generation or 0)

    def generation(self, resource: str) -> int:
        """How often the resource was purged; what a fetch starting now must find again
        to store what it fetched."""
        return int(self.redis.hget(self.keys.generations(), resource) or 0)

    def save(self, resource: str, entry: Entry, keep_until: float,
             generation: int | None = None) -> bool:
        """Replace an entry whole (a reader never sees half of one); with a
        ``generation``, only if the resource was not purged since: False then."""
        fields = [item for pair in entry.to_fields().items() for item in pair]
        done = self._save(
            keys=[self.keys.entry(resource), self.keys.generations()],
            args=[resource, "" if generation is None else str(generation),
                  _ms(keep_until), *fields])
        return bool(done)

    def revalidate(self, resource: str, entry: Entry, keep_until: float,
                   generation: int | None = None) -> bool:
        """Store the new timestamps of a 304; False if the entry is gone meanwhile, or
        was purged since ``generation``."""
        done = self._revalidate(
            keys=[self.keys.entry(resource), self.keys.generations()],
            args=[repr(entry.checked_at), repr(entry.fresh_until), _ms(keep_until),
                  "" if generation is None else str(generation), resource],
        )
        return bool(done)
