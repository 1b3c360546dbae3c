"""HTTP caching rules as pure functions: validators, conditional requests, freshness headers.

RFC 9110 section 13 (conditional requests), RFC 9111 (caching), RFC 5861 (stale-while-
revalidate, stale-if-error) and RFC 9211 (Cache-Status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class UpstreamFreshness:
    """What an upstream's answer says of its own caching (RFC 9111, as a shared cache
    reads it): whether it may be stored, and for how many seconds it is fresh (None:
    it does not say)."""

    store: bool = True
    max_age: float | None = None


def upstream_freshness(cache_control: str | None, expires: str | None = None,
                       date: str | None = None, age: str | None = None) -> UpstreamFreshness:
    """Read ``Cache-Control``, ``Expires``, ``Date`` and ``Age``: ``no-store`` and
    ``private`` forbid storing; the lifetime is ``s-maxage``, else ``max-age``, else
    ``Expires`` less ``Date`` (an invalid ``Expires`` is already expired; without a
    ``Date`` it says nothing), ``no-cache``
    making it 0; the answer's ``Age`` is taken off. A malformed directive is ignored."""
    directives: dict[str, str] = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives.setdefault(name.lower(), value.strip().strip('"'))
    if "no-store" in directives or "private" in directives:
        return UpstreamFreshness(store=False)
    lifetime = None
    for name in ("s-maxage", "max-age"):
        if directives.get(name, "").isdigit():
            lifetime = float(directives[name])
            break
    if lifetime is None and expires is not None:
        lifetime = _expires_in(expires, date)
    if "no-cache" in directives:
        lifetime = 0.0
    if lifetime is None:
        return UpstreamFreshness()
    taken = float(age) if age is not None and age.strip().isdigit() else 0.0
    return UpstreamFreshness(max_age=max(lifetime - taken, 0.0))


def _expires_in(expires: str, date: str | None) -> float | None:
    """``Expires`` less ``Date``, in seconds; None without a valid ``Date`` to count from."""
    try:
        start = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        start = None
    if start is None:
        return None
    try:
        end = parsedate_to_datetime(expires)
    except (TypeError, ValueError):
        return 0.0
    return max((end - start).total_seconds(), 0.0)


def bounded(value: float | None, low: float, high: float, otherwise: float) -> float:
    """``value`` within [``low``, ``high``]; ``otherwise`` when it is None."""
    if value is None:
        return otherwise
    return min(max(value, low), high)
