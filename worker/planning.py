"""Budget plans: every ``[refresh] plan_interval`` seconds (beat's ``plan`` entry),
each upstream's live resources get the TTLs that buy the most read-weighted freshness
with its refresh budget (shared/policy/freshness.py: the TTL for all while the budget
pays for it).
Refreshes read a resource's planned TTL (worker/refresh.py): it sets when the next
refresh is due and how long the data is fresh, so answers' ``max-age``, ``Age`` and
``Cache-Status`` tell the resource's own clock. A TTL that changes moves the next
refresh at once (earlier or later, never past a back-off or a wait for the budget),
unless it changed by less than the refreshes' jitter; moved later, the data stays fresh
until then (else reads would ask for a refresh of their own meanwhile).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.bounded import LRU
from shared.policy.freshness import Limits, Observed, change_rate, plan, quantiles
from shared.policy.timing import JITTER, next_refresh
from shared.store.freshness import Checks, Lengthened
from shared.upstreams.registry import upstreams
from worker.context import WorkerContext
from worker.pacing import budget_rate

log = logging.getLogger(__name__)

QUANTILES = (0.1, 0.5, 0.9)
NEVER = 1e9  # seconds between changes shown for a resource estimated never to change


def plan_all(ctx: WorkerContext) -> dict[str, dict[str, Any]]:
    """Plan every upstream's live resources and forget what is kept of resources no
    longer live; returns each upstream's summary."""
    live = ctx.schedule.live()
    ctx.freshness.prune(set(live))
    before = ctx.freshness.summaries()
    by_upstream: dict[str, list[str]] = {}
    for resource in live:
        by_upstream.setdefault(resource.partition(":")[0], []).append(resource)
    summaries = {}
    for upstream in upstreams():
        summary = plan_upstream(ctx, upstream, by_upstream.get(upstream, []))
        was = before.get(upstream, {}).get("active", False)
        if summary["active"] != was:
            log.info("budget plan " + ("on: the budget cannot pay for every TTL"
                                       if summary["active"] else "off: every resource on its TTL"),
                     extra={"upstream": upstream, **summary})
        if summary["over_budget"] and not before.get(upstream, {}).get("over_budget"):
            log.warning("budget plan: the budget cannot pay even for refresh.max_age; "
                        "refreshes are paced and answers get older than it",
                        extra={"upstream": upstream, **summary})
        summaries[upstream] = summary
    return summaries


def plan_upstream(ctx: WorkerContext, upstream: str, resources: list[str]) -> dict[str, Any]:
    """Plan one upstream's live ``resources`` and store the plan; returns its summary."""
    settings, now = ctx.settings, ctx.clock()
    ttl, refresh, own = settings.ttl_for(upstream), settings.refresh, settings.upstreams[upstream]
    # The upstream's own bounds (its catalogue entry, <NAME>_MIN_TTL...), else [refresh]'s.
    limits = Limits(ttl, refresh.ratio,
                    getattr(own, "min_ttl", 0) or refresh.min_ttl or ttl,
                    getattr(own, "max_age", 0) or refresh.max_age)
    rate = budget_rate(ctx, upstream)
    observed = ctx.freshness.observed(resources, now)
    rates = [_change_rate(checks, ttl) for checks, _, _ in observed]
    made = plan([Observed(r, reads, checks.requests)
                 for r, (checks, reads, _) in zip(rates, observed, strict=True)], limits, rate)
    ttls = made.ttls if made.ttls is not None else [float(ttl)] * len(resources)
    planned: dict[str, float] = {}
    clear: list[str] = []
    earlier: dict[str, float] = {}
    later: dict[str, Lengthened] = {}
    for resource, (checks, _, before), new in zip(resources, observed, ttls, strict=True):
        if made.ttls is not None:
            planned[resource] = new
        elif before is not None:
            clear.append(resource)
        old = before or ttl
        if checks.checked_at and abs(new - old) > JITTER * old:
            # The next refresh follows the new TTL now, not from the one after (a change
            # within the refreshes' jitter leaves it where it is).
            at = next_refresh(checks.checked_at, new, refresh.ratio)
            if new < old:
                earlier[resource] = at
            else:  # and its data fresh that long, or reads would ask for it meanwhile
                later[resource] = Lengthened(checks.checked_at, checks.checked_at + new, at)
    summary = {
        "at": round(now, 3),
        "active": made.ttls is not None,
        # Even every resource on max_age needs more than the budget: refreshes are paced
        # and answers get older than max_age.
        "over_budget": rate is not None and made.spending > rate,
        "resources": len(resources),
        "budget_per_s": None if rate is None else round(rate, 4),
        "requests_per_s": round(made.spending, 4),
        "predicted_freshness": round(made.freshness, 4),
        "change_interval_s": _quantiles([min(1 / r, NEVER) for r in rates]),
        "ttl_s": _quantiles(ttls),
    }
    cache = settings.cache
    ctx.freshness.apply(upstream, planned, clear, earlier, later,
                        max(cache.stale_if_error, cache.stale_while_revalidate), summary)
    log.debug("budget plan", extra={"upstream": upstream, **summary})
    return summary


# Estimates by (checks as stored, prior): most resources are not refreshed between two
# plans, and an estimate costs a root-finding (10,000 of them about a second of CPU).
_estimates: LRU[tuple[str, float], float] = LRU(100_000)


def _change_rate(checks: Checks, prior: float) -> float:
    key = (checks.encode(), prior)
    rate = _estimates.get(key)
    if rate is None:
        rate = change_rate(checks.history, prior)
        _estimates.put(key, rate)
    return rate


def _quantiles(values: list[float]) -> dict[str, float]:
    return {str(q): round(v, 1) for q, v in zip(QUANTILES, quantiles(values, QUANTILES),
                                                  strict=False)}
