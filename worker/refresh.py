"""Refreshing one resource: fetch it (conditionally when cached), store what upstream
said, and plan its next refresh; and running a flight's fetch so that its waiters always
hear how it went.

The tasks in ``worker/tasks.py`` call these; the rules they follow (what to store, when
to retry, how to pace) are the pure functions of ``shared/policy``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery.exceptions import SoftTimeLimitExceeded
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import (
    BudgetSpent,
    CachedProxyError,
    FetchFailed,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
)
from shared.policy.fetching import (
    Backoff,
    Cause,
    after_failure,
    fetch_cost,
    retry_at,
    skip_as_recent,
    storable,
)
from shared.policy.freshness import Check, observe
from shared.policy.timing import next_refresh, recovery_plan, retry_delay
from shared.store.entries import store_error
from shared.store.entry import Entry, keep_until, not_found
from shared.store.flights import FETCH_SOFT_TIME_LIMIT, FETCH_TIME_LIMIT, Flight, Outcome
from shared.store.freshness import Checks
from shared.upstreams.kinds import ResourceKind
from shared.upstreams.registry import kind_of
from worker.context import WorkerContext
from worker.fetch import Fetched, fetch, upstream_bounds
from worker.pacing import account, pace, pace_miss
from worker.upstream import RateLimited, Recorder

log = logging.getLogger(__name__)

# A claimed refresh that has not finished by then is claimed again.
REFRESH_LEASE = FETCH_TIME_LIMIT + 5

# Publishing a flight's outcome outlasts a Sentinel failover: lost connections are tried
# again (0.2, 0.4, 0.8, then 1 s apart) for about as long as the flight's lock would
# otherwise keep the resource from being fetched. Sentinels may delay a failover that
# follows another by twice their failover-timeout; 8 s of tries once left a resource
# blocked until its lock expired.
FINISH_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.1), FETCH_TIME_LIMIT)


def refresh(ctx: WorkerContext, resource: str, cause: Cause) -> Outcome:
    """Fetch a resource (conditionally when cached), store what upstream said, and plan
    its next refresh.

    Upstream errors leave the stored entry as it was and retry with capped exponential
    backoff; a 404 is remembered briefly and the resource leaves the schedule. A
    scheduled refresh of a resource validated less than half a period ago is not
    fetched again. A fetch ahead (``cause.ahead``: no client waits) is paced to the
    upstream's budget and held while the upstream fails; otherwise it goes if the
    misses' share of the upstream's budget allows, else fails with BudgetSpent and when
    to ask again.
    """
    kind = kind_of(resource)
    client = Recorder(ctx.upstreams[kind.upstream], time.monotonic() + FETCH_SOFT_TIME_LIMIT)
    previous, generation = ctx.entries.read_for_fetch(resource)
    known = ctx.freshness.known(resource)
    # Its own TTL when its upstream's budget plan gives it one (shared/policy/freshness.py).
    ttl = known.ttl or ctx.settings.ttl_for(kind.upstream)
    follow = upstream_bounds(ctx.settings, kind.upstream)
    admitted = _admit(ctx, kind, resource, cause, previous, ttl)
    if isinstance(admitted, Outcome):
        return admitted
    try:
        return _fetch(ctx, kind, client, resource, cause, previous, generation,
                      (ttl, follow), known.checks)
    finally:
        with contextlib.suppress(redis.RedisError):  # accounting never fails a fetch
            if client.responses:
                ctx.metrics.upstream(kind.upstream, kind.name, client.responses, ctx.clock())
            account(ctx, kind.upstream, resource, client, admitted.refreshes, admitted.misses)


@dataclass(frozen=True)
class Spent:
    """Requests taken from the upstream's budget before fetching: the refreshes' bucket,
    the misses' share."""

    refreshes: float = 0.0
    misses: float = 0.0


def _admit(ctx: WorkerContext, kind: ResourceKind, resource: str, cause: Cause,
           previous: Entry | None, ttl: float) -> Spent | Outcome:
    """Whether the fetch goes: what it took from the upstream's budget, or the outcome
    of one that does not (skipped as recent, held, paced, or refused)."""
    plan, now = ctx.settings.refresh, ctx.clock()
    if previous is not None and skip_as_recent(cause, previous.status, previous.checked_at,
                                               now, ttl, plan.ratio):
        ctx.schedule.succeeded(resource, next_refresh(previous.checked_at, ttl, plan.ratio))
        return Outcome()
    cost = fetch_cost(len(previous.validators) if previous is not None else None)
    fields = {"resource": resource, "upstream": kind.upstream}
    if not cause.ahead:
        wait = pace_miss(ctx, kind.upstream, resource, cost)
        if wait <= 0:
            return Spent(misses=cost)
        log.info("miss refused: the misses' share of the upstream budget is spent",
                 extra={**fields, "wait_s": round(wait, 1)})
        return Outcome.failed(BudgetSpent(
            f"the share of the upstream's request budget kept for data not cached is "
            f"spent; retry in {math.ceil(wait)} s", retry_after=wait))
    # Held until the upstream answers a probe (_answered brings it back); the far-off
    # retry only matters if that never happens.
    gate = ctx.breaker.gate(kind.upstream, resource, now, REFRESH_LEASE,
                            hold_until=now + plan.retry_max)
    if not gate.allowed:
        log.info("refresh held: upstream failing",
                 extra={**fields, "next_probe_in_s": round(gate.retry_at - now, 1)})
        return Outcome.failed(UpstreamError("upstream is failing; refresh held"))
    wait = pace(ctx, kind.upstream, resource, cost)
    if wait > 0:
        # Over the upstream's budget: the data stays as it is a little longer.
        ctx.schedule.pace(resource, ctx.clock() + wait)
        log.info("refresh paced: upstream budget", extra={**fields, "wait_s": round(wait, 1)})
        return Outcome.failed(UpstreamError("refresh paced to the upstream's budget"))
    return Spent(refreshes=cost)


def _fetch(ctx: WorkerContext, kind: ResourceKind, client: Recorder, resource: str,
           cause: Cause, previous: Entry | None, generation: int,
           ttl: tuple[float, tuple[float, float] | None], checks: Checks) -> Outcome:
    """Fetch, store, and plan the next refresh (noting what the check found); or,
    failed, retry after a back-off. ``ttl``: the TTL, and the bounds of the upstream's
    own when it is followed."""
    settings = ctx.settings
    cache, plan = settings.cache, settings.refresh
    started = time.perf_counter()
    try:
        result = _fetch_and_store(ctx, kind, client, resource, previous, ttl, generation)
        ttl_given = result.entry.fresh_until - result.entry.checked_at  # the upstream's?
    except CachedProxyError as exc:
        now = ctx.clock()
        failures = 0 if isinstance(exc, NotFound) else ctx.schedule.note_failure(
            resource, f"{exc.code}: {exc.message}")
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        decision = after_failure(exc, failures, Backoff(plan.retry_base, plan.retry_max),
                                 retry_after)
        if decision.not_found:
            entry = not_found(now, cache.negative_ttl)
            ctx.entries.save(resource, entry, keep_until(entry, cache.stale_if_error,
                                                         cache.stale_while_revalidate))
            ctx.schedule.drop(resource)
            _answered(ctx, kind.upstream)
            log.info("fetched", extra=_fields(resource, started, cause, outcome="not_found"))
            return Outcome.failed(exc)
        probe_at = None
        if decision.upstream_failed:
            probe_at = ctx.breaker.failed(kind.upstream, now, lambda past_threshold: (
                retry_delay(past_threshold, plan.retry_base, plan.probe_max, retry_after)),
                f"{exc.code}: {exc.message}")
        # With its upstream failing, this resource becomes the next probe.
        again = retry_at(now, probe_at, decision.retry_in)
        ctx.schedule.postpone(resource, again)
        log.warning("fetch failed", extra=_fields(
            resource, started, cause, outcome=exc.code, error=exc.message,
            failures=failures, retry_in_s=round(again - now, 1),
        ))
        return Outcome.failed(exc)
    at = next_refresh(result.entry.checked_at, ttl_given, plan.ratio)
    checks, found = _checked(checks, previous, result)

    def also(pipe: redis.client.Pipeline) -> None:
        ctx.schedule.succeeded(resource, at, pipe, admit=cause.ahead)
        if found is not None:
            ctx.metrics.checked(pipe, kind.upstream, found, result.requests)
        if found is not None or cause.ahead:  # not a first fetch for a client (no check)
            ctx.freshness.record(pipe, resource, checks)

    _answered(ctx, kind.upstream, also)
    log.info("fetched", extra=_fields(
        resource, started, cause, outcome="modified" if result.changed else "not_modified",
        upstream_requests=result.requests,
    ))
    return Outcome()


def _checked(checks: Checks, previous: Entry | None, result: Fetched
             ) -> tuple[Checks, bool | None]:
    """The resource's checks with this fetch, and whether it found a change (None: not
    a check, nothing was stored before). New data the same as before is no change."""
    if previous is None or previous.status != 200:
        return Checks(result.requests, result.entry.checked_at, checks.history), None
    changed = result.changed and result.entry.digest != previous.digest
    history = observe(checks.history, Check(result.entry.checked_at - previous.checked_at,
                                            changed))
    return Checks(result.requests, result.entry.checked_at, history), changed


def _fetch_and_store(ctx: WorkerContext, kind: ResourceKind, client: Recorder, resource: str,
                     previous: Entry | None, ttl: tuple[float, tuple[float, float] | None],
                     generation: int) -> Fetched:
    """Fetch and store what upstream said, if the resource's purge ``generation`` (read
    before fetching) still holds. A purge while the fetch ran means upstream may have
    changed after it answered: the answer is dropped and asked again, once."""
    cache = ctx.settings.cache
    for attempt in range(2):
        if attempt:
            generation = ctx.entries.generation(resource)
        result = fetch(client, kind, resource, previous, ctx.clock(), *ttl)
        kept = keep_until(result.entry, cache.stale_if_error, cache.stale_while_revalidate)
        if not result.changed and not ctx.entries.revalidate(resource, result.entry, kept,
                                                             generation):
            # The entry expired or was purged while upstream said 304: take it whole.
            previous = None
            continue
        if not result.changed:
            return result
        size = len(result.entry.encoded_data().encode())
        if not storable(size, cache.max_entry_bytes):
            # Stored, it would crowd out everything else; what is stored stays.
            raise UpstreamError(f"upstream data too large to store ({size} bytes, at "
                                f"most {cache.max_entry_bytes})", upstream_status=200)
        if ctx.entries.save(resource, result.entry, kept, generation):
            return result
        log.info("fetch dropped: purged while it ran", extra={"resource": resource})
        previous = None
    raise FetchFailed("the resource was purged again while it was fetched")


def _answered(ctx: WorkerContext, upstream: str,
              also: Callable[[redis.client.Pipeline], None] | None = None) -> None:
    """The upstream answered: if it was failing, refresh what was held back, promptly
    and spread out; ``also`` queues what the same transaction records besides."""
    held = ctx.breaker.answered(upstream, also)
    if held is None:
        return
    plan = ctx.settings.refresh
    ctx.schedule.replan(recovery_plan(held, ctx.clock(), plan.max_claims / plan.tick_interval))
    log.info("upstream answers again", extra={"upstream": upstream, "held": len(held)})


def _fields(resource: str, started: float, cause: Cause, **extra: object) -> dict[str, object]:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"resource": resource, "cause": cause.value, "duration_ms": duration_ms, **extra}


def run_flight(ctx: WorkerContext, flight: Flight, cause: Cause, worker: str | None,
               tracked: bool = False) -> str:
    """Run a flight this worker leads, noted as running in Redis meanwhile (so that a
    restart of a killed worker can fail it: worker/health.py), unless ``tracked``
    already (``Flights.join`` with the worker)."""
    # What waiters hear if the fetch never gets to say: the process is being torn down
    # (SIGTERM/SIGINT raise out of the task) or something unexpected was raised.
    outcome = Outcome.failed(FetchFailed("the fetch was interrupted"))
    try:
        if worker and not tracked:
            ctx.flights.track(worker, flight)
        outcome = refresh(ctx, flight.resource, cause)
    except SoftTimeLimitExceeded:
        outcome = Outcome.failed(UpstreamTimeout("fetch took longer than its time limit"))
    except redis.RedisError as exc:
        outcome = Outcome.failed(store_error(exc))
        log.warning("fetch could not use the store", extra={
            "resource": flight.resource, "outcome": outcome.code, "error": repr(exc)})
    finally:
        try:
            # A failover loses the connection: finish on the promoted replica, or the
            # lock it holds would keep the resource from being fetched until it expires.
            FINISH_RETRY.call_with_retry(
                lambda: ctx.flights.finish(flight, outcome, worker), lambda _: None)
        except redis.RedisError as exc:
            log.warning("fetch outcome not published; its waiters time out",
                        extra={"resource": flight.resource, "error": repr(exc)})
    return outcome.code
