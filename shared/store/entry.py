"""The cache entry of one resource and the pure rules around it.

An entry is a Redis hash: the trimmed data, the upstream validators (one pair per page),
when the data was fetched, when upstream last confirmed it, and until when it is fresh.
A 304 changes only the timestamps (``revalidated``); a 200 replaces the entry whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

FORMAT_VERSION = "2"


@dataclass(frozen=True)
class Validator:
    """What upstream gave to ask again conditionally: ETag and Last-Modified."""

    etag: str | None = None
    last_modified: str | None = None


def conditional_headers(validator: Validator | None) -> dict[str, str]:
    """Stored validators -> the request headers of a conditional GET."""
    headers = {}
    if validator is not None and validator.etag:
        headers["If-None-Match"] = validator.etag
    if validator is not None and validator.last_modified:
        headers["If-Modified-Since"] = validator.last_modified
    return headers


@dataclass(frozen=True)
class Entry:
    """One resource as stored: its data (or a 404), validators and times."""

    status: int  # 200: data is served; 404: upstream said the resource does not exist
    data: Any
    validators: tuple[Validator, ...]
    fetched_at: float
    checked_at: float
    fresh_until: float
    page_size: int = 0  # the page size the validators belong to (paginated kinds)
    digest: str = ""  # of the data: the same data has the same digest, in any process

    def is_fresh(self, now: float) -> bool:
        """Whether it may be served without asking upstream."""
        return now < self.fresh_until

    def validator(self, page: int, page_size: int = 0) -> Validator | None:
        """The stored validator of a page, if it still describes the same page."""
        if self.status != 200 or page >= len(self.validators) or page_size != self.page_size:
            return None
        return self.validators[page]

    def encoded_data(self) -> str:
        """The data as stored: compact JSON, UTF-8."""
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))

    def to_fields(self) -> dict[str, str]:
        """The entry as the fields of its Redis hash."""
        return {
            "v": FORMAT_VERSION,
            "status": str(self.status),
            "data": self.encoded_data(),
            "validators": json.dumps([[v.etag, v.last_modified] for v in self.validators]),
            "fetched_at": repr(self.fetched_at),
            "checked_at": repr(self.checked_at),
            "fresh_until": repr(self.fresh_until),
            "page_size": str(self.page_size),
            "digest": self.digest,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Entry | None:
        """Decode a hash; ``None`` for a missing key or an entry of another format."""
        f = {_text(k): _text(v) for k, v in fields.items()}
        if f.get("v") != FORMAT_VERSION:
            return None
        try:
            return cls(
                status=int(f["status"]),
                data=json.loads(f["data"]),
                validators=tuple(Validator(e, lm) for e, lm in json.loads(f["validators"])),
                fetched_at=float(f["fetched_at"]),
                checked_at=float(f["checked_at"]),
                fresh_until=float(f["fresh_until"]),
                page_size=int(f["page_size"]),
                digest=f["digest"],
            )
        except (KeyError, ValueError, TypeError):
            return None


def digest(data: Any) -> str:
    """A digest of JSON data, the same for equal data however its keys are ordered."""
    canonical = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def fetched(
    data: Any, validators: tuple[Validator, ...], now: float, ttl: float, page_size: int = 0
) -> Entry:
    """The entry of a fresh 200."""
    return Entry(200, data, validators, now, now, now + ttl, page_size, digest(data))


def not_found(now: float, negative_ttl: float) -> Entry:
    """The entry remembering an upstream 404 for a short while."""
    return Entry(404, None, (), now, now, now + negative_ttl, digest=digest(None))


def revalidated(entry: Entry, now: float, ttl: float) -> Entry:
    """Upstream answered 304: the same data is fresh for another ttl."""
    return replace(entry, checked_at=now, fresh_until=now + ttl)


def keep_until(entry: Entry, stale_if_error: float, stale_while_revalidate: float = 0.0
               ) -> float:
    """When Redis may drop the entry: good data is kept past freshness for revalidation
    and as a fallback, a remembered 404 for revalidation only."""
    if entry.status == 200:
        return entry.fresh_until + max(stale_if_error, stale_while_revalidate)
    return entry.fresh_until + stale_while_revalidate
