"""What is cached, for operators: list entries and purge them, by resource, by prefix
(an upstream, a kind) or all of a view's parts. Used by the admin API and its command."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from shared.policy.status import rfc3339
from shared.store.entry import Entry
from shared.store.freshness import FreshnessStore
from shared.store.keys import Keys

SCAN_BATCH = 500


@dataclass(frozen=True)
class Listed:
    """One entry as the admin API lists it."""

    resource: str
    entry: Entry | None  # None: stored in a format this version does not read
    bytes: int
    next_refresh: float | None  # epoch seconds; None: not live (not refreshed ahead)
    last_read: float | None
    failures: int = 0  # refreshes failed in a row
    last_error: str | None = None  # the last one's error, while they count

    def as_json(self, now: float) -> dict[str, Any]:
        """The entry as the admin API's JSON: each time as epoch seconds and, beside it
        (``<name>_rfc3339``), as an RFC 3339 time in UTC."""
        e = self.entry
        times = {
            "fetched_at": e.fetched_at if e else None,
            "checked_at": e.checked_at if e else None,
            "fresh_until": e.fresh_until if e else None,
            "next_refresh": self.next_refresh,
            # a failing live entry's next refresh is its retry, after a back-off
            "next_retry": self.next_refresh if self.failures else None,
            "last_read": self.last_read,
        }
        return {
            "resource": self.resource,
            "status": e.status if e else None,
            "bytes": self.bytes,
            "fresh": bool(e and e.is_fresh(now)),
            "validators": [[v.etag, v.last_modified] for v in e.validators] if e else [],
            "live": self.next_refresh is not None,
            "failures": self.failures,
            "last_error": self.last_error,
            **{name: value for at, t in times.items()
               for name, value in ((at, t), (f"{at}_rfc3339", rfc3339(t)))},
        }


class Inventory:
    """What the admin API reads and changes: entries listed, inspected and purged, and
    the upstreams' budget plans."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def plans(self) -> dict[str, Any]:
        """Each upstream's last budget plan (worker/planning.py), by name."""
        return FreshnessStore(self.redis, self.keys).summaries()

    def _resources(self, prefix: str) -> Iterator[str]:
        start = len(self.keys.entry(""))
        for key in self.redis.scan_iter(match=_glob(self.keys.entry(prefix)) + "*",
                                        count=SCAN_BATCH):
            yield (key.decode() if isinstance(key, bytes) else key)[start:]

    def entries(self, prefix: str = "", limit: int = 100, after: str = "",
                live: bool | None = None) -> list[Listed]:
        """Entries whose resource starts with ``prefix``, in name order, at most
        ``limit`` of them after the resource ``after`` (the previous page's last);
        ``live``: only those refreshed ahead (True) or only idle ones (False)."""
        names = sorted(r for r in self._resources(prefix) if r > after)
        found: list[Listed] = []
        while names and len(found) < limit:
            batch, names = names[:limit], names[limit:]
            found += [e for e in self._listed(batch)
                      if live is None or (e.next_refresh is not None) == live]
        return found[:limit]

    def _listed(self, names: list[str]) -> list[Listed]:
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.entry(name))
                # Every field counted: sampling (Redis's default, 5) misses the data field
                # of most entries and reports a sixteenth of what they hold.
                pipe.memory_usage(self.keys.entry(name), samples=0)
            pipe.zmscore(self.keys.schedule(), names)
            pipe.zmscore(self.keys.reads(), names)
            pipe.hmget(self.keys.failures(), names)
            pipe.hmget(self.keys.failure_errors(), names)
            *pairs, due, reads, failures, errors = pipe.execute()
        return [
            Listed(name, Entry.from_fields(fields), int(size or 0),
                   None if at is None else at / 1000, None if read is None else read / 1000,
                   int(failed or 0), _text(error) if failed else None)
            for name, fields, size, at, read, failed, error in zip(
                names, pairs[::2], pairs[1::2], due, reads, failures, errors, strict=True)
            if fields  # gone since the SCAN
        ]

    def purge(self, resources: Iterable[str]) -> list[str]:
        """Delete these resources' entries and their refresh plans; returns those that
        had an entry. The next read of each is a miss with upstream's data."""
        names = list(resources)
        if not names:
            return []
        with self.redis.pipeline(transaction=True) as pipe:
            for name in names:
                pipe.delete(self.keys.entry(name))
            pipe.zrem(self.keys.schedule(), *names)
            pipe.zrem(self.keys.reads(), *names)
            pipe.hdel(self.keys.failures(), *names)
            pipe.hdel(self.keys.failure_errors(), *names)
            pipe.hdel(self.keys.paced(), *names)
            for name in names:  # a fetch under way cannot store what it got before
                pipe.hincrby(self.keys.generations(), name, 1)
            deleted = pipe.execute()[:len(names)]
        return [name for name, gone in zip(names, deleted, strict=True) if gone]

    def purge_prefix(self, prefix: str) -> list[str]:
        """Every resource whose name starts with ``prefix`` (``github:``: an upstream)."""
        purged: list[str] = []
        batch: list[str] = []
        for name in self._resources(prefix):
            batch.append(name)
            if len(batch) >= SCAN_BATCH:
                purged += self.purge(batch)
                batch = []
        return purged + self.purge(batch)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _glob(text: str) -> str:
    """``text`` with Redis MATCH's special characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
