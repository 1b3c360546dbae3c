"""Celery tasks: fetch a resource for waiting requests, refresh live ones ahead of expiry.

- ``cachedproxy.fetch`` (queue ``fetch``): a miss's fetch; the API leads its flight.
- ``cachedproxy.tick`` (queue ``refresh``): sent by beat; claims due resources.
- ``cachedproxy.refresh`` (queue ``refresh``): one claimed resource; it leads a flight of
  its own, so a refresh and a miss never fetch the same resource at once.
"""

from __future__ import annotations

import contextlib
import logging
import time

import redis
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import task_failure
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import (
    CachedProxyError,
    FetchFailed,
    FetchTimeout,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
)
from shared.policy.storing import Backoff, Stored, after_fetch
from shared.policy.timing import (
    next_refresh,
    recently_checked,
    recovery_plan,
    retry_delay,
)
from shared.queue import FETCH_TASK, REFRESH_TASK, TICK_TASK
from shared.store.entries import store_error
from shared.store.entry import Entry, keep_until, not_found
from shared.store.flights import FETCH_TIME_LIMIT, Flight, Outcome
from shared.store.health import ticked
from shared.telemetry.logs import log_context
from shared.upstreams.kinds import ResourceKind
from shared.upstreams.registry import kind_of, upstreams
from worker import app
from worker.context import WorkerContext, process_context
from worker.fetch import Fetched, fetch
from worker.pacing import account, pace
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


class ContextTask(Task):
    """A task with its process's WorkerContext."""

    @property
    def context(self) -> WorkerContext:
        return process_context()


def refresh(ctx: WorkerContext, resource: str, ahead: bool = False,
            scheduled: bool = False) -> Outcome:
    """Fetch a resource (conditionally when cached), store what upstream said, and plan
    its next refresh.

    Upstream errors leave the stored entry as it was and retry with capped exponential
    backoff; a 404 is remembered briefly and the resource leaves the schedule. With
    ``scheduled`` (the schedule's refresh) a resource validated less than half a period
    ago is not fetched again. ``ahead`` (no client waits: a scheduled refresh, or a fetch
    after serving stale data) is paced to the upstream's budget and held while the
    upstream fails.
    """
    kind = kind_of(resource)
    client = Recorder(ctx.upstreams[kind.upstream])
    spent = [0.0]  # requests taken from the upstream's budget before fetching
    try:
        return _refresh(ctx, kind, client, resource, ahead, scheduled, spent)
    finally:
        with contextlib.suppress(redis.RedisError):  # accounting never fails a fetch
            if client.responses:
                ctx.metrics.upstream(kind.name, client.responses)
            account(ctx, kind.upstream, resource, client, spent[0])


def _refresh(ctx: WorkerContext, kind: ResourceKind, client: Recorder, resource: str,
             ahead: bool, scheduled: bool, spent: list[float]) -> Outcome:
    settings = ctx.settings
    cache, plan = settings.cache, settings.refresh
    ttl = settings.ttl_for(kind.upstream)
    previous = ctx.entries.read([resource])[0]
    if (scheduled and previous is not None and previous.status == 200
            and recently_checked(previous.checked_at, ctx.clock(), ttl, plan.ratio)):
        ctx.schedule.succeeded(
            resource, next_refresh(previous.checked_at, ttl, plan.ratio))
        return Outcome()
    if ahead:
        gate = ctx.breaker.gate(kind.upstream, resource, ctx.clock(), REFRESH_LEASE)
        if not gate.allowed:
            # Held until the upstream answers a probe (_answered brings it back); the
            # far-off retry only matters if that never happens.
            ctx.schedule.postpone(resource, ctx.clock() + plan.retry_max)
            log.info("refresh held: upstream failing", extra={
                "resource": resource, "upstream": kind.upstream,
                "next_probe_in_s": round(gate.retry_at - ctx.clock(), 1)})
            return Outcome.failed(UpstreamError("upstream is failing; refresh held"))
        cost = float(len(previous.validators)) if previous is not None else 1.0
        wait = pace(ctx, kind.upstream, resource, cost)
        if wait > 0:
            # Over the upstream's budget: the data stays as it is a little longer.
            ctx.schedule.pace(resource, ctx.clock() + wait)
            log.info("refresh paced: upstream budget", extra={
                "resource": resource, "upstream": kind.upstream, "wait_s": round(wait, 1)})
            return Outcome.failed(UpstreamError("refresh paced to the upstream's budget"))
        spent[0] = cost
    started = time.perf_counter()
    try:
        result = _fetch_and_store(ctx, kind, client, resource, previous, ttl)
    except CachedProxyError as exc:
        now = ctx.clock()
        failures = 0 if isinstance(exc, NotFound) else ctx.schedule.note_failure(resource)
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        decision = after_fetch(None, exc, failures, Backoff(plan.retry_base, plan.retry_max),
                               retry_after)
        if decision.stored is Stored.NOT_FOUND:
            entry = not_found(now, cache.negative_ttl)
            ctx.entries.save(resource, entry, keep_until(entry, cache.stale_if_error))
            ctx.schedule.drop(resource)
            _answered(ctx, kind.upstream)
            log.info("fetched", extra=_fields(resource, started, ahead, outcome="not_found"))
            return Outcome.failed(exc)
        probe_at = None
        if decision.upstream_failed:
            probe_at = ctx.breaker.failed(kind.upstream, now, lambda past_threshold: (
                retry_delay(past_threshold, plan.retry_base, plan.probe_max, retry_after)))
        # With its upstream failing, this resource becomes the next probe.
        retry_at = probe_at if probe_at is not None else now + (decision.retry_in or 0.0)
        ctx.schedule.postpone(resource, retry_at)
        log.warning("fetch failed", extra=_fields(
            resource, started, ahead, outcome=exc.code, error=exc.message,
            failures=failures, retry_in_s=round(retry_at - now, 1),
        ))
        return Outcome.failed(exc)
    ctx.schedule.succeeded(
        resource, next_refresh(result.entry.checked_at, ttl, plan.ratio))
    _answered(ctx, kind.upstream)
    log.info("fetched", extra=_fields(
        resource, started, ahead, outcome="modified" if result.changed else "not_modified",
        upstream_requests=result.requests,
    ))
    return Outcome()


def _fetch_and_store(ctx: WorkerContext, kind: ResourceKind, client: Recorder, resource: str,
                     previous: Entry | None, ttl: int) -> Fetched:
    """Fetch and store what upstream said. A purge while the fetch ran means upstream
    may have changed after it answered: the answer is dropped and asked again, once."""
    cache = ctx.settings.cache
    for _ in range(2):
        generation = ctx.entries.generation(resource)
        result = fetch(client, kind, resource, previous, ctx.clock(), ttl)
        kept = keep_until(result.entry, cache.stale_if_error)
        if not result.changed and not ctx.entries.revalidate(resource, result.entry, kept,
                                                             generation):
            # The entry expired or was purged while upstream said 304: take it whole.
            previous = None
            continue
        if not result.changed:
            return result
        size = len(result.entry.encoded_data().encode())
        if size > cache.max_entry_bytes:
            # Stored, it would crowd out everything else; what is stored stays.
            raise UpstreamError(f"upstream data too large to store ({size} bytes, at "
                                f"most {cache.max_entry_bytes})", upstream_status=200)
        if ctx.entries.save(resource, result.entry, kept, generation):
            return result
        log.info("fetch dropped: purged while it ran", extra={"resource": resource})
        previous = None
    raise FetchFailed("the resource was purged again while it was fetched")


def _answered(ctx: WorkerContext, upstream: str) -> None:
    """The upstream answered: if it was failing, refresh what was held back, promptly
    and spread out."""
    held = ctx.breaker.answered(upstream)
    if held is None:
        return
    plan = ctx.settings.refresh
    ctx.schedule.replan(recovery_plan(held, ctx.clock(), plan.max_claims / plan.tick_interval))
    log.info("upstream answers again", extra={"upstream": upstream, "held": len(held)})


def _fields(resource: str, started: float, ahead: bool, **extra: object) -> dict[str, object]:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"resource": resource, "ahead": ahead, "duration_ms": duration_ms, **extra}


def _run_flight(ctx: WorkerContext, flight: Flight, ahead: bool, worker: str | None,
                scheduled: bool = False) -> str:
    """Run a flight this worker leads, noted as running in Redis meanwhile (so that a
    restart of a killed worker can fail it: worker/health.py)."""
    # What waiters hear if the fetch never gets to say: the process is being torn down
    # (SIGTERM/SIGINT raise out of the task) or something unexpected was raised.
    outcome = Outcome.failed(FetchFailed("the fetch was interrupted"))
    try:
        if worker:
            ctx.flights.track(worker, flight)
        outcome = refresh(ctx, flight.resource, ahead, scheduled)
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


@app.task(bind=True, base=ContextTask, name=FETCH_TASK)
def fetch_resource(self: ContextTask, resource: str, token: str,
                   request_id: str | None = None, background: bool = False) -> str:
    """Fetch one resource for the flight ``token`` (led by the API) and publish the outcome;
    logs carry the id of the request that caused it. A ``background`` fetch (stale data
    was served, nobody waits) goes like a refresh ahead: paced, held while the upstream
    fails, skipped if the resource was just validated."""
    ctx = self.context
    flight = Flight(resource, token, leader=True)
    with log_context(request_id=request_id, task_id=self.request.id):
        try:
            started = ctx.flights.start(flight)
        except redis.RedisError as exc:
            ctx.flights.finish(flight, Outcome.failed(store_error(exc)))
            return store_error(exc).code
        if not started:
            # Queued past its waiters' deadline, and another flight leads now.
            log.info("fetch superseded", extra={"resource": resource})
            ctx.flights.finish(flight, Outcome.failed(
                FetchTimeout("the fetch started after its waiters gave up")))
            return "superseded"
        return _run_flight(ctx, flight, ahead=background, worker=self.request.hostname)


@app.task(bind=True, base=ContextTask, name=REFRESH_TASK)
def refresh_resource(self: ContextTask, resource: str, due: float | None = None,
                     on_demand: bool = False) -> str:
    """Refresh one live resource ahead of its expiry, unless a fetch of it is under way;
    ``due`` is when the schedule wanted it (for the refresh-lag metric). ``on_demand``
    (an operator's "refresh now") asks upstream at once: not paced, not skipped for
    having been checked lately."""
    ctx = self.context
    if due is not None:
        with contextlib.suppress(redis.RedisError):
            ctx.metrics.refresh_lag(ctx.clock() - due)
    # The task id is the flight's token, so _fetch_lost can end the flight too.
    try:
        flight = ctx.flights.join(resource, token=self.request.id)
    except redis.RedisError as exc:
        # Out of memory or away: the schedule's lease brings the refresh back.
        log.warning("refresh skipped: store unusable",
                    extra={"resource": resource, "error": repr(exc)})
        return store_error(exc).code
    if not flight.leader:
        return "in_flight"  # that fetch plans the next refresh
    with log_context(task_id=self.request.id):
        return _run_flight(ctx, flight, ahead=not on_demand, worker=self.request.hostname,
                           scheduled=not on_demand)


PUBLISH_BATCH = 500  # broker commands the tick sends in one round trip


# No task events for the tick: one a second would crowd Flower's task list and memory.
@app.task(bind=True, base=ContextTask, name=TICK_TASK, ignore_result=True, send_events=False)
def tick(self: ContextTask) -> int:
    """Claim the resources due for refresh by the next tick and enqueue a refresh for
    each."""
    started = time.perf_counter()
    ctx = self.context
    settings = ctx.settings
    plan = settings.refresh
    pinned = [r for name, upstream in upstreams().items()
              for r in upstream.prefetch(settings.upstreams[name])]
    try:
        claimed, dropped = ctx.schedule.claim_due(
            plan.max_claims, REFRESH_LEASE, plan.idle_timeout, pinned, plan.tick_interval)
        ticked(ctx.redis, ctx.schedule.keys, ctx.clock())
        ctx.flights.sweep()
        # A failing upstream's probe, due and not under way, goes now (breaker.py).
        probes = ctx.breaker.due_probes(list(upstreams()), ctx.clock())
    except redis.RedisError as exc:
        # Out of memory or away: nothing was claimed; the next tick tries again.
        log.warning("tick skipped: store unusable", extra={"error": repr(exc)})
        return 0
    try:
        # One pipeline for the tick's refreshes (kombu's publish batch), not a round
        # trip and a Redis client each.
        with self.app.producer_or_acquire() as producer, producer.batch(PUBLISH_BATCH):
            for resource, due in [*claimed, *((probe, None) for probe in probes)]:
                refresh_resource.apply_async((resource, due), expires=REFRESH_LEASE,
                                             producer=producer)
    except Exception as exc:  # kombu wraps Redis's errors in its own
        # What was not sent comes back when its claimed lease runs out.
        log.warning("tick could not enqueue refreshes", extra={
            "error": repr(exc), "claimed": len(claimed), "probes": len(probes)})
        return 0
    if claimed or dropped or probes:
        log.info("tick", extra={"claimed": len(claimed), "idle_dropped": dropped,
                                "probes": len(probes),
                                "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
    return len(claimed)


@task_failure.connect
def _fetch_lost(sender: Task, task_id: str, exception: BaseException, args: list[str],
                **_: object) -> None:
    """A fetch's process died or hit the hard time limit: answer its waiters now.

    Runs in the worker's main process; without it the waiters would wait out their
    timeout and the lock would block the resource until it expires.
    """
    if sender.name not in (FETCH_TASK, REFRESH_TASK):
        return
    if isinstance(exception, WorkerLostError):
        outcome = Outcome.failed(FetchFailed("the fetch's worker process was lost"))
    elif isinstance(exception, TimeLimitExceeded):
        outcome = Outcome.failed(UpstreamTimeout("fetch took longer than its time limit"))
    else:
        return
    resource = args[0]
    token = args[1] if sender.name == FETCH_TASK else task_id
    log.error("fetch lost", extra={"resource": resource, "error": repr(exception)})
    fetch_resource.context.flights.finish(Flight(resource, token, leader=True), outcome)
