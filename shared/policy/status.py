"""An upstream's state as an operator sees it, from what Redis holds: pure functions of
values (shared/store/status.py reads them; /admin/upstreams and /metrics show them).

- **failing**: the breaker counts ``threshold`` upstream-wide failures in a row
  (shared/store/breaker.py); refreshes are held and one probe goes per back-off.
- **paced**: the refreshes' budget is spent ahead by more than its burst: refreshes
  wait for their turns (shared/store/budget.py), so the data ages meanwhile.
- **answering**: neither.

Budget spent is counted per minute (one Redis counter a minute, kept an hour and a
bit): the last hour's sum is what an hourly budget is compared with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

MINUTE = 60
HOUR_MINUTES = 60  # minutes summed as "the last hour"


def minute_of(t: float) -> int:
    """The minute (since the epoch) that time ``t`` falls in."""
    return int(t // MINUTE)


def last_hour(now: float) -> list[int]:
    """The minutes of the last hour, oldest first, the current one last."""
    current = minute_of(now)
    return list(range(current - HOUR_MINUTES + 1, current + 1))


def rfc3339(t: float | None) -> str | None:
    """Epoch seconds as an RFC 3339 time in UTC, to the millisecond (None: None)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def upstream_state(failures: int, threshold: int, paced_for: float, burst: float) -> str:
    """"failing", "paced" or "answering" (the module docstring)."""
    if failures >= threshold:
        return "failing"
    if paced_for > burst:
        return "paced"
    return "answering"


@dataclass(frozen=True)
class Live:
    """An upstream's live resources: how many, how late the most overdue refresh is,
    and how long the stalest entry has been past its freshness (seconds; 0: none), as
    of ``at`` (None: not counted yet)."""

    resources: int = 0
    overdue_s: float = 0.0
    oldest_stale_s: float = 0.0
    at: float | None = None


def live_by_upstream(due: Iterable[tuple[str, float]], fresh_until: Mapping[str, float],
                     upstream_of: Mapping[str, str], now: float) -> dict[str, Live]:
    """Per upstream, from the schedule's (resource, due at) pairs, each live entry's
    ``fresh_until`` (absent: none stored yet) and each resource's upstream."""
    counts: dict[str, int] = {}
    overdue: dict[str, float] = {}
    stale: dict[str, float] = {}
    for resource, at in due:
        upstream = upstream_of.get(resource)
        if upstream is None:  # its kind left the catalogue
            continue
        counts[upstream] = counts.get(upstream, 0) + 1
        overdue[upstream] = max(overdue.get(upstream, 0.0), now - at)
        until = fresh_until.get(resource)
        if until is not None:
            stale[upstream] = max(stale.get(upstream, 0.0), now - until)
    return {u: Live(n, round(overdue[u], 3), round(max(stale.get(u, 0.0), 0.0), 3), now)
            for u, n in counts.items()}


@dataclass(frozen=True)
class Upstream:
    """What Redis holds of one upstream (shared/store/status.py)."""

    failures: int = 0  # upstream-wide failures in a row
    failing_since: float | None = None  # epoch seconds of the first of them
    last_error: str | None = None
    next_probe: float | None = None  # epoch seconds, while failing
    paced_for: float = 0.0  # seconds the refreshes' budget is spent ahead
    spent: tuple[int, ...] = ()  # requests made each minute of the last hour
    remaining: int | None = None  # what the upstream reported of its rate limit
    reset_at: float | None = None


def described(name: str, upstream: Upstream, live: Live, budget_per_hour: int,
              threshold: int, burst: float) -> dict[str, object]:
    """One upstream as ``GET /admin/upstreams`` shows it."""
    failing = upstream.failures >= threshold
    return {
        "upstream": name,
        "state": upstream_state(upstream.failures, threshold, upstream.paced_for, burst),
        "failures": upstream.failures,
        "failing_since": rfc3339(upstream.failing_since) if failing else None,
        "last_error": upstream.last_error,
        "next_probe": rfc3339(upstream.next_probe) if failing else None,
        "budget": {"spent_last_hour": sum(upstream.spent),
                   "per_hour": budget_per_hour or None,
                   "by_minute": list(upstream.spent),
                   "paced_for_s": round(max(upstream.paced_for, 0.0), 3)},
        "reported": None if upstream.remaining is None else {
            "remaining": upstream.remaining, "reset_at": rfc3339(upstream.reset_at)},
        "live_resources": live.resources,
        "refresh_overdue_s": max(live.overdue_s, 0.0),
        "oldest_stale_s": live.oldest_stale_s,
        "live_as_of": rfc3339(live.at),
    }


# How the status page groups cache outcomes (shared/policy/serving.py's Served values).
HITS = ("hit", "local")
STALE = ("stale", "stale_if_error")
MISSES = ("miss", "collapsed")


@dataclass(frozen=True)
class CacheMinute:
    """View answers in one minute: all of them, and those served from the cache, stale,
    or fetched (misses, and requests that waited on another's fetch)."""

    answers: int = 0
    hits: int = 0
    stale: int = 0
    misses: int = 0


def cache_minute(counts: Mapping[str, int]) -> CacheMinute:
    """One minute's ``{"<view>|<outcome>": n}`` (api/tally.py) summed by kind."""
    by_outcome: dict[str, int] = {}
    for field, n in counts.items():
        outcome = field.rpartition("|")[2]
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
    return CacheMinute(sum(by_outcome.values()), sum(by_outcome.get(o, 0) for o in HITS),
                       sum(by_outcome.get(o, 0) for o in STALE),
                       sum(by_outcome.get(o, 0) for o in MISSES))


def hottest(minutes: Iterable[Mapping[str, int]], n: int) -> list[tuple[str, int]]:
    """The ``n`` views answered most over these minutes, most first (ties by name)."""
    by_view: dict[str, int] = {}
    for counts in minutes:
        for field, count in counts.items():
            view = field.rpartition("|")[0]
            by_view[view] = by_view.get(view, 0) + count
    return sorted(by_view.items(), key=lambda item: (-item[1], item[0]))[:n]


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or None of nothing."""
    return part / whole if whole else None


def quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as (upper bound, cumulative count) pairs
    in bound order, the last bound +Inf, interpolated within its bucket as Prometheus's
    histogram_quantile does; None without observations. In the +Inf bucket: the highest
    finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
