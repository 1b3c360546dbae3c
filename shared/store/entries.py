"""Cache entries in Redis: read many in one round trip, write one atomically."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis

from shared.errors import CachedProxyError, StoreFull, StoreUnavailable
from shared.store.entry import Entry
from shared.store.keys import Keys

# A 304 touches only the timestamps, and only of an entry that still exists.
_REVALIDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'checked_at', ARGV[1], 'fresh_until', ARGV[2])
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
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._revalidate = client.register_script(_REVALIDATE)

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

    def save(self, resource: str, entry: Entry, keep_until: float) -> None:
        """Replace an entry whole; a reader never sees half of one."""
        key = self.keys.entry(resource)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=entry.to_fields())  # type: ignore[arg-type]
            pipe.pexpireat(key, _ms(keep_until))
            pipe.execute()

    def revalidate(self, resource: str, entry: Entry, keep_until: float) -> bool:
        """Store the new timestamps of a 304; False if the entry is gone meanwhile."""
        done = self._revalidate(
            keys=[self.keys.entry(resource)],
            args=[repr(entry.checked_at), repr(entry.fresh_until), _ms(keep_until)],
        )
        return bool(done)
