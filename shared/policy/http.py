"""HTTP caching rules as pure functions: validators, conditional requests, freshness headers.

RFC 9110 section 13 (conditional requests), RFC 9111 (caching), RFC 5861 (stale-while-
revalidate, stale-if-error) and RFC 9211 (Cache-Status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from email.utils import formatdate, parsedate_to_datetime


def strong_etag(*parts: str) -> str:
    """A strong ETag for a representation made of ``parts`` (names, versions, digests)."""
    return '"' + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" matches "x"; lists and * work."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag.removeprefix("W/") for t in tags)


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, modified: float | None
) -> bool:
    """Whether a GET/HEAD with these headers gets 304. If-None-Match, when present, wins
    over If-Modified-Since; an unparsable date is ignored."""
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if if_modified_since is not None and modified is not None:
        try:
            return int(modified) <= parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def http_date(epoch: float) -> str:
    """An IMF-fixdate (RFC 9110 section 5.6.7) of epoch seconds."""
    return formatdate(epoch, usegmt=True)


def cache_control(max_age: float, stale_while_revalidate: int, stale_if_error: int) -> str:
    """Cache-Control of a view: max-age (the freshness left, never below 0), and the
    stale-while-revalidate and stale-if-error windows."""
    return (f"max-age={int(max(max_age, 0))}, stale-while-revalidate={stale_while_revalidate}, "
            f"stale-if-error={stale_if_error}")


def cache_status(cache: str, params: Iterable[str]) -> str:
    """An RFC 9211 Cache-Status field value for one cache."""
    return "; ".join([cache, *params])
