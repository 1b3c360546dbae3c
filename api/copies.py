"""Each API process's copies of the views it served last: what a hit is answered from.

A copy (body, validators, freshness, the resources it was made of) is dropped when an
entry of one of its resources changes in Redis (api/tracker.py tells which), when the
catalogue changes, and, least recently served first, past ``COPIES`` views or
``COPY_BYTES`` of bodies.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

COPIES = 1024  # views kept per process
COPY_BYTES = 32 * 1024 * 1024  # and at most this many body bytes


@dataclass(frozen=True)
class Copy:
    """A view as this process last served it."""

    body: bytes
    etag: str
    modified: float  # Last-Modified (epoch seconds)
    fresh_until: float
    checked_at: float  # when upstream last confirmed its oldest part
    resources: tuple[str, ...] = ()
    session: int = 0  # the tracking session it was made in (0: none): hits need it current
    status: int = 200  # 404: a remembered upstream 404 (the body is the JSON error)


Key = tuple[str, str]  # view name, parameters


class Copies:
    """The views served last, by view and parameters; the least recently served are
    dropped past ``count`` views or ``max_bytes`` of bodies."""

    def __init__(self, count: int = COPIES, max_bytes: int = COPY_BYTES) -> None:
        self.count = count
        self.max_bytes = max_bytes
        self.bytes = 0
        self._copies: OrderedDict[Key, Copy] = OrderedDict()
        self._using: dict[str, set[Key]] = {}  # resource -> the copies made of it
        self._lock = threading.Lock()

    def get(self, key: Key) -> Copy | None:
        """The copy of view and parameters ``key``, or None."""
        return self._copies.get(key)

    def put(self, key: Key, copy: Copy) -> None:
        """Keep ``copy`` as the most recently served (one over ``max_bytes`` is not kept)."""
        with self._lock:
            self._remove(key)
            if len(copy.body) > self.max_bytes:
                return
            self._copies[key] = copy
            self.bytes += len(copy.body)
            for resource in copy.resources:
                self._using.setdefault(resource, set()).add(key)
            while len(self._copies) > self.count or self.bytes > self.max_bytes:
                self._remove(next(iter(self._copies)))

    def drop(self, resources: Sequence[str]) -> None:
        """Forget every copy made of any of these resources (they changed in Redis)."""
        with self._lock:
            for resource in resources:
                for key in list(self._using.get(resource, ())):
                    self._remove(key)

    def clear(self) -> None:
        """Forget every copy (the catalogue changed: views may be made differently)."""
        with self._lock:
            self._copies.clear()
            self._using.clear()
            self.bytes = 0

    def _remove(self, key: Key) -> None:
        old = self._copies.pop(key, None)
        if old is None:
            return
        self.bytes -= len(old.body)
        for resource in old.resources:
            keys = self._using.get(resource)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._using[resource]

    def touch(self, key: Key, etag: str, fresh_until: float, checked_at: float,
              session: int = 0) -> bool:
        """Note a view served again from Redis: its copy, when of the same data, takes the
        new freshness and tracking session. False when there is no such copy (it needs
        the body: ``put``)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None or copy.etag != etag:
                return False
            if (copy.fresh_until, copy.checked_at, copy.session) != (
                    fresh_until, checked_at, session):
                self._copies[key] = Copy(copy.body, etag, copy.modified, fresh_until,
                                         checked_at, copy.resources, session, copy.status)
            self._copies.move_to_end(key)
            return True
