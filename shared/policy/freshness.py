"""Freshness within a budget: how often each live resource is refreshed when its
upstream's request budget cannot pay for every TTL, as pure functions.

The model is Cho & Garcia-Molina's ("Effective page refresh policies for Web crawlers",
ACM TODS 2003): a resource changes upstream as a Poisson process of rate λ, and a copy
refreshed every I seconds is the same as upstream for the share
F(λ, I) = (1 − e^(−λI)) / (λI) of the time (``freshness``).

**Estimating λ** (``change_rate``): each refresh of a stored resource is one check, I
seconds after the one before, that found a change (new data) or none (a 304, or the
same data again). The maximum-likelihood rate for checks at irregular intervals (Cho &
Garcia-Molina, "Estimating frequency of change", ACM TOIT 2003, §5) is the root of
Σ_changed t / (e^(λt) − 1) = Σ_unchanged t. It is taken over the last ``WINDOW`` checks
plus a prior of one changed and one unchanged check a TTL apart (λ = ln 2 / TTL before
anything is known), so no run of checks makes a rate of 0 or infinity, and a resource
that starts or stops changing is followed within ``WINDOW`` checks. The prior's changed
check weighs (n + 1)^−1.5 after n checks: with a full weight, a resource that never
changes would be estimated to change about once per the time it has been watched,
and would keep a share of the budget it cannot use for many minutes (measured:
docs/BENCHMARKS.md, "Freshness within a budget").

**Allocating the budget** (``allocate``): maximise the read-weighted freshness
Σ wᵢ F(λᵢ, Iᵢ) (wᵢ: reads a second) under Σ cᵢ / Iᵢ ≤ budget (cᵢ: requests a refresh
takes) with each Iᵢ within its bounds. The Lagrange condition wᵢ ∂F/∂fᵢ = μ cᵢ (fᵢ = 1/Iᵢ)
reads g(λᵢIᵢ) = μ cᵢ λᵢ / wᵢ with g(x) = 1 − (1 + x)e^(−x), increasing from 0 to 1: one
threshold μ for all, found by bisection so the budget is spent (Olston & Pandey's utility
threshold, WWW 2008, is the same optimum). What follows is Cho & Garcia-Molina's result,
not "refresh what changes most": a resource changing faster than its share of the budget
can follow (g would have to exceed 1) gets the longest interval, as does one that never
changes; the rest get intervals shrinking as 1/√(wλ) for slow changes.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.policy.timing import mean_period

WINDOW = 16  # checks a change rate is estimated from
PRIOR_FADING = 1.5  # the prior's changed check weighs (n + 1) ** -PRIOR_FADING after n checks
PLAN_SHARE = 0.9  # of an upstream's refresh budget a plan spends; the rest absorbs misses
READ_TIME_CONSTANT = 600.0  # seconds over which read rates are averaged (exponentially)

_LOWEST_RATE, _HIGHEST_RATE = 1e-9, 1e3  # changes a second the estimate stays within


@dataclass(frozen=True)
class Check:
    """One refresh of a stored resource: seconds since the check before, and whether
    upstream's data had changed."""

    interval: float
    changed: bool


def observe(history: Sequence[Check], check: Check) -> tuple[Check, ...]:
    """The history with one more check: the last ``WINDOW``."""
    return (*history, check)[-WINDOW:]


def change_rate(history: Sequence[Check], prior_interval: float) -> float:
    """Changes a second, estimated from ``history`` and the prior (a changed and an
    unchanged check ``prior_interval`` apart, the changed one weighing
    (n + 1) ** -PRIOR_FADING after n checks): the maximum-likelihood rate."""
    changed = [(c.interval, 1.0) for c in history if c.changed and c.interval > 0]
    changed.append((prior_interval, (1 + len(history)) ** -PRIOR_FADING))
    unchanged = sum(c.interval for c in history if not c.changed) + prior_interval

    def excess(rate: float) -> float:  # decreasing in rate; its root is the estimate
        return sum(weight * t / math.expm1(rate * t) if rate * t < 700 else 0.0
                   for t, weight in changed) - unchanged

    low, high = math.log(_LOWEST_RATE), math.log(_HIGHEST_RATE)
    if excess(_LOWEST_RATE) <= 0:
        return _LOWEST_RATE
    if excess(_HIGHEST_RATE) >= 0:
        return _HIGHEST_RATE
    for _ in range(40):
        middle = (low + high) / 2
        if excess(math.exp(middle)) > 0:
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


def freshness(rate: float, interval: float) -> float:
    """The share of time a copy refreshed every ``interval`` seconds is the same as a
    source changing ``rate`` times a second (Poisson): (1 − e^(−x)) / x, x = rate × interval."""
    x = rate * interval
    return 1.0 if x <= 0 else -math.expm1(-x) / x


def _gain(x: float) -> float:
    """g(x) = 1 − (1 + x)e^(−x): the marginal freshness of refreshing more often, × λ."""
    return -math.expm1(-x) - x * math.exp(-x)


# g is inverted by interpolation over a geometric grid of x (g is increasing).
_XS = [1e-6 * (60 / 1e-6) ** (i / 2047) for i in range(2048)]
_GS = [_gain(x) for x in _XS]


def _inverse_gain(y: float) -> float:
    """The x with g(x) = y; infinity when y is 1 or more (no x reaches it)."""
    if y >= _GS[-1]:
        return math.inf
    if y <= _GS[0]:
        return math.sqrt(2 * max(y, 0.0))  # g(x) ≈ x² / 2 near 0
    i = bisect.bisect_left(_GS, y)
    x0, x1, g0, g1 = _XS[i - 1], _XS[i], _GS[i - 1], _GS[i]
    return x0 + (x1 - x0) * (y - g0) / (g1 - g0)


@dataclass(frozen=True)
class Item:
    """One live resource as the allocation sees it: changes a second, reads a second,
    requests a refresh takes, and the shortest and longest refresh interval allowed."""

    rate: float
    weight: float
    cost: float
    shortest: float
    longest: float


def _interval(item: Item, threshold: float) -> float:
    """The interval of ``item`` at the Lagrange ``threshold`` μ, within its bounds."""
    if item.rate <= 0 or item.weight <= 0:
        return item.longest
    x = _inverse_gain(threshold * item.cost * item.rate / item.weight)
    return min(max(x / item.rate, item.shortest), item.longest)


def spending(items: Sequence[Item], intervals: Sequence[float]) -> float:
    """Requests a second refreshing each item every its interval costs."""
    return sum(item.cost / interval for item, interval in zip(items, intervals, strict=True))


def allocate(items: Sequence[Item], budget: float) -> list[float]:
    """The refresh interval of each item that maximises read-weighted freshness with at
    most ``budget`` requests a second: the shortest intervals if the budget pays for
    them, the longest if it cannot even pay for those (they are a promise)."""
    shortest = [item.shortest for item in items]
    if spending(items, shortest) <= budget:
        return shortest
    longest = [item.longest for item in items]
    if spending(items, longest) >= budget:
        return longest
    # The thresholds at which each item's interval leaves its shortest and reaches its
    # longest bound bracket the one that spends the budget.
    ends = [item.weight * _gain(item.rate * bound) / (item.cost * item.rate)
            for item in items if item.rate > 0 and item.weight > 0
            for bound in (item.shortest, item.longest)]
    if not ends:  # nothing changes or nothing is read: refreshing more buys nothing
        return longest
    low, high = math.log(max(min(ends), 1e-300)), math.log(max(ends) * 2)
    for _ in range(40):
        middle = (low + high) / 2
        if spending(items, [_interval(i, math.exp(middle)) for i in items]) > budget:
            low = middle
        else:
            high = middle
    return [_interval(item, math.exp(high)) for item in items]


def predicted_freshness(items: Sequence[Item], intervals: Sequence[float]) -> float:
    """The read-weighted share of answers the same as upstream, by the model (1.0 for
    no reads)."""
    total = sum(item.weight for item in items)
    if total <= 0:
        return 1.0
    return sum(item.weight * freshness(item.rate, interval)
               for item, interval in zip(items, intervals, strict=True)) / total


def read_rate(decayed: float, updated_at: float, now: float) -> float:
    """Reads a second from an exponentially decayed count of reads (time constant
    ``READ_TIME_CONSTANT``) last updated at ``updated_at``."""
    return decayed * math.exp(-max(now - updated_at, 0.0) / READ_TIME_CONSTANT) \
        / READ_TIME_CONSTANT


@dataclass(frozen=True)
class Limits:
    """An upstream's clock and the bounds a plan keeps to: its TTL and the refresh
    ratio (today's clock refreshes every ``ttl × ratio``), and the shortest and longest
    TTL a plan may give a resource (``min_ttl``; ``max_age``, a promise: no answer goes
    unchecked longer)."""

    ttl: float
    ratio: float
    min_ttl: float
    max_age: float


@dataclass(frozen=True)
class Observed:
    """A live resource as its upstream's plan sees it: changes a second (estimated),
    reads a second, requests a refresh takes."""

    rate: float
    reads: float
    cost: float


@dataclass(frozen=True)
class Plan:
    """An upstream's plan: each resource's TTL (None: the budget pays for the TTL
    clock, which stays), the requests a second it spends, and the read-weighted
    freshness the model predicts for it."""

    ttls: list[float] | None
    spending: float
    freshness: float


def plan(observed: Sequence[Observed], limits: Limits, refresh_rate: float | None) -> Plan:
    """Today's clock if the upstream's refresh budget (``refresh_rate`` requests a
    second, None: no limit; ``PLAN_SHARE`` of it planned) pays for every resource's TTL;
    else the TTLs that buy the most read-weighted freshness with it, each within
    [min_ttl, max_age]. A resource nobody reads counts as read once per
    ``READ_TIME_CONSTANT`` (configured resources are kept warm without reads)."""
    period = mean_period(1.0, limits.ratio)  # of a refresh, per second of TTL
    clock = limits.ttl * period
    shortest = min(limits.min_ttl, limits.ttl) * period
    longest = max(limits.max_age, limits.ttl) * period
    items = [Item(o.rate, max(o.reads, 1 / READ_TIME_CONSTANT), o.cost, shortest, longest)
             for o in observed]
    today = [clock] * len(items)
    if refresh_rate is None or spending(items, today) <= refresh_rate * PLAN_SHARE:
        return Plan(None, spending(items, today), predicted_freshness(items, today))
    intervals = allocate(items, refresh_rate * PLAN_SHARE)
    return Plan([i / period for i in intervals], spending(items, intervals),
                predicted_freshness(items, intervals))


def quantiles(values: Sequence[float], points: Sequence[float] = (0.1, 0.5, 0.9)
              ) -> list[float]:
    """The values at these quantiles (nearest rank); empty for no values."""
    ordered = sorted(values)
    if not ordered:
        return []
    return [ordered[min(int(q * len(ordered)), len(ordered) - 1)] for q in points]
