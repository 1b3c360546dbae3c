"""Keeping refreshes within an upstream's request budget: the I/O around the rules of
shared/policy/budget.py (what the upstream reported, the shared bucket in Redis)."""

from __future__ import annotations

from shared.policy.budget import refresh_rate
from worker.context import WorkerContext
from worker.upstream import Recorder


def _rate(ctx: WorkerContext, upstream: str, now: float,
          reported: tuple[int, float] | None) -> tuple[float | None, float]:
    """Requests a second the upstream's refreshes may make (None: no limit), and the
    seconds until the rate limit it ``reported`` (remaining, reset at) resets."""
    remaining, reset_in = (reported[0], reported[1] - now) if reported else (None, None)
    budget = ctx.settings.upstreams[upstream].budget_per_hour
    return refresh_rate(budget, remaining, reset_in), reset_in or 0.0


def budget_rate(ctx: WorkerContext, upstream: str) -> float | None:
    """Requests a second the upstream's refreshes may make now; None: no limit."""
    now = ctx.clock()
    return _rate(ctx, upstream, now, ctx.budget.observed(upstream))[0]


def pace(ctx: WorkerContext, upstream: str, resource: str, cost: float) -> float:
    """Take a refresh's expected requests from the upstream's budget: the seconds it
    must wait instead (0: go)."""
    now = ctx.clock()
    rate, reset_in = _rate(ctx, upstream, now, ctx.budget.observed(upstream))
    if rate is None:
        return 0.0
    if rate <= 0:  # nothing left until the upstream's reset
        return max(reset_in, 1.0)
    return ctx.budget.spend(upstream, resource, cost, rate, now)


def pace_miss(ctx: WorkerContext, upstream: str, resource: str, cost: float) -> float:
    """Take a miss's expected requests from the misses' share of the upstream's budget:
    0 to go, else the seconds until its share would allow it (nothing is taken)."""
    now = ctx.clock()
    rate, reset_in = _rate(ctx, upstream, now, ctx.budget.observed(upstream))
    if rate is None:
        return 0.0
    if rate <= 0:
        return max(reset_in, 1.0)
    return ctx.budget.spend(upstream, resource, cost, rate * ctx.settings.upstream.miss_share,
                            now, miss=True)


def account(ctx: WorkerContext, upstream: str, resource: str, client: Recorder,
            spent: float, miss: float = 0.0) -> None:
    """Note the rate limit the upstream reported, and charge the requests a fetch
    made beyond what it took up front to the budget (all of a miss's, and a miss's
    beyond the ``miss`` requests its share paid up front to that share too), at the rate
    that report gives (no second read of what was just written)."""
    reported = client.rate_limit
    if reported is not None:
        ctx.budget.observe(upstream, *reported)
    made = len(client.responses)
    if made == spent and (not miss or made == miss):
        return
    now = ctx.clock()
    rate, _ = _rate(ctx, upstream, now, reported)
    if not rate:
        return
    if made != spent:
        ctx.budget.spend(upstream, resource, made - spent, rate, now, force=True)
    if miss and made != miss:
        ctx.budget.spend(upstream, resource, made - miss,
                         rate * ctx.settings.upstream.miss_share, now, force=True, miss=True)
