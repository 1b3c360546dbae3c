"""Celery tasks: fetch a resource for waiting requests, refresh live ones ahead of expiry.

- ``cachedproxy.fetch`` (queue ``fetch``): a miss's fetch; the API leads its flight.
- ``cachedproxy.tick`` (queue ``refresh``): sent by beat; claims due resources and sends
  them in batches, one upstream each.
- ``cachedproxy.refresh_batch`` (queue ``refresh``): claimed resources of one upstream,
  refreshed up to its ``max_in_flight`` at once (``worker/fanout.py``); each leads a
  flight of its own, so a refresh and a miss never fetch the same resource at once.
- ``cachedproxy.refresh`` (queue ``refresh``): one resource, now (an operator's
  "refresh now").
- ``cachedproxy.plan`` (queue ``refresh``): sent by beat; each upstream's refreshes
  planned within its budget (``worker/planning.py``).

The worker runs tasks on threads of one process (Celery's ``threads`` pool): a fetch
waiting on its upstream costs a thread, not a process; the upstream client
(``worker/upstream.py``) keeps each fetch within its deadline, as a thread cannot be
stopped from outside.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, worker_shutdown

from shared.errors import FetchFailed, FetchTimeout, UpstreamError, UpstreamTimeout
from shared.policy.fetching import Cause
from shared.queue import FETCH_TASK, PLAN_TASK, REFRESH_BATCH_TASK, REFRESH_TASK, TICK_TASK
from shared.store.entries import store_error
from shared.store.flights import Flight, Outcome
from shared.store.health import ticked
from shared.store.status import forget_old_counts, store_live
from shared.telemetry.logs import log_context
from shared.upstreams.registry import upstream_of, upstreams
from worker import app
from worker.context import WorkerContext, process_context
from worker.fanout import batches
from worker.planning import plan_all
from worker.refresh import REFRESH_LEASE, run_flight
from worker.summary import TickSummary

log = logging.getLogger(__name__)


class ContextTask(Task):
    """A task with its process's WorkerContext."""

    @property
    def context(self) -> WorkerContext:
        """The process's WorkerContext."""
        return process_context()


@app.task(bind=True, base=ContextTask, name=FETCH_TASK)
def fetch_resource(self: ContextTask, resource: str, token: str,
                   request_id: str | None = None, background: bool = False) -> str:
    """Fetch one resource for the flight ``token`` (led by the API) and publish the outcome;
    logs carry the id of the request that caused it. A ``background`` fetch (stale data
    was served, nobody waits) goes like a refresh ahead: paced, held while the upstream
    fails, skipped if the resource was just validated, or left to the schedule while the
    upstream has max_in_flight refreshes under way or waiting."""
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
        upstream = resource.partition(":")[0]  # as batches() does, and never raises
        if background and ctx.fanout.pending(upstream) >= ctx.settings.in_flight_for(upstream):
            # Its upstream has max_in_flight refreshes under way or waiting already: the
            # stale copy stays until the schedule refreshes it, rather than this task
            # holding a thread (one other upstreams' refreshes need) waiting for a slot.
            log.info("background fetch left to the schedule: upstream busy",
                     extra={"resource": resource, "upstream": upstream})
            ctx.flights.finish(flight, Outcome.failed(
                UpstreamError("upstream busy; its refreshes are queued")))
            return "busy"
        cause = Cause.BACKGROUND if background else Cause.MISS
        return run_flight(ctx, flight, cause, worker=self.request.hostname)


@app.task(bind=True, base=ContextTask, name=REFRESH_TASK)
def refresh_resource(self: ContextTask, resource: str, due: float | None = None,
                     on_demand: bool = False) -> str:
    """Refresh one live resource, unless a fetch of it is under way; ``due`` is when the
    schedule wanted it (for the refresh-lag metric). ``on_demand`` (an operator's
    "refresh now") asks upstream at once: not paced, not skipped for having been checked
    lately."""
    ctx = self.context
    if due is not None:
        with contextlib.suppress(redis.RedisError, KeyError):  # KeyError: kind unknown now
            ctx.metrics.refresh_lag(upstream_of(resource), ctx.clock() - due)
    # The task id is the flight's token, so _fetch_lost can end the flight too.
    return _refresh_claimed(ctx, resource, self.request.id, self.request.hostname,
                            Cause.ON_DEMAND if on_demand else Cause.SCHEDULED)


@app.task(bind=True, base=ContextTask, name=REFRESH_BATCH_TASK)
def refresh_batch(self: ContextTask, upstream: str, due: Sequence[tuple[str, float | None]]
                  ) -> dict[str, int]:
    """Refresh claimed resources of one upstream, up to its ``max_in_flight`` at once;
    ``due`` holds (resource, when the schedule wanted it, None for a probe) pairs.
    Returns how many ended how (``ok``, ``in_flight``, error codes, ``handed_back``)."""
    ctx = self.context
    wanted = dict(due)
    task_id, hostname = self.request.id, self.request.hostname
    lags: list[float] = []

    def work(resource: str) -> str:
        when = wanted[resource]
        if when is not None:
            lags.append(ctx.clock() - when)
        # Each flight's token names the batch, so _fetch_lost can end them too.
        return _refresh_claimed(ctx, resource, f"{task_id}:{resource}", hostname,
                                Cause.SCHEDULED)

    codes, handed_back = ctx.fanout.run(
        upstream, ctx.settings.in_flight_for(upstream), list(wanted), work)
    with contextlib.suppress(redis.RedisError):
        ctx.metrics.refresh_lag(upstream, *lags)
        if handed_back:
            # The upstream's backlog is full: these come due again in turn, at the rate it
            # is refreshed (not with the lease, and not all at once).
            ctx.schedule.postpone_each(list(zip(handed_back, ctx.fanout.due_again(
                upstream, len(handed_back), ctx.clock()), strict=True)))
    counts: dict[str, int] = {"handed_back": len(handed_back)} if handed_back else {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return counts


def _refresh_claimed(ctx: WorkerContext, resource: str, token: str | None,
                     worker: str | None, cause: Cause) -> str:
    """Lead a flight for a refresh and run it, unless a fetch of the resource is under
    way (that one plans the next refresh)."""
    try:
        flight = ctx.flights.join(resource, token=token, worker=worker)
    except redis.RedisError as exc:
        # Out of memory or away: the schedule's lease brings the refresh back.
        log.warning("refresh skipped: store unusable",
                    extra={"resource": resource, "error": repr(exc)})
        return store_error(exc).code
    if not flight.leader:
        return "in_flight"
    with log_context(task_id=token):
        return run_flight(ctx, flight, cause, worker=worker, tracked=True)


PUBLISH_BATCH = 500  # broker commands the tick sends in one round trip
_ticks = TickSummary()  # this worker's ticks, summed up at INFO once a minute


# No task events for the tick: one a second would crowd Flower's task list and memory.
@app.task(bind=True, base=ContextTask, name=TICK_TASK, ignore_result=True, send_events=False)
def tick(self: ContextTask) -> int:
    """Claim the resources due for refresh by the next tick and enqueue them in batches,
    one upstream each."""
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
            for upstream, batch in batches([*claimed, *((probe, None) for probe in probes)]):
                refresh_batch.apply_async((upstream, batch), expires=REFRESH_LEASE,
                                          producer=producer)
    except Exception as exc:  # kombu wraps Redis's errors in its own
        # What was not sent comes back when its claimed lease runs out.
        log.warning("tick could not enqueue refreshes", extra={
            "error": repr(exc), "claimed": len(claimed), "probes": len(probes)})
        return 0
    ms = (time.perf_counter() - started) * 1000
    if claimed or dropped or probes:
        log.debug("tick", extra={"claimed": len(claimed), "idle_dropped": dropped,
                                 "probes": len(probes), "duration_ms": round(ms, 2)})
    summary = _ticks.add(ctx.clock(), len(claimed), dropped, len(probes), ms)
    if summary is not None:
        log.info("ticks", extra=summary)
    return len(claimed)


@app.task(bind=True, base=ContextTask, name=PLAN_TASK, ignore_result=True, send_events=False)
def plan(self: ContextTask) -> int:
    """Plan each upstream's refreshes within its budget (worker/planning.py), count its
    live resources' lag for the status page and /metrics, and forget the per-minute
    counts past the hour; returns how many upstreams' plans give resources their own
    TTLs."""
    ctx = self.context
    try:
        names = list(upstreams())
        forget_old_counts(ctx.redis, ctx.keys, names, ctx.clock())
        store_live(ctx.redis, ctx.keys, names, upstream_of, ctx.clock())
        return sum(s["active"] for s in plan_all(ctx).values())
    except redis.RedisError as exc:
        log.warning("plan skipped: store unusable", extra={"error": repr(exc)})
        return 0


@worker_shutdown.connect
def _finish_refreshes(**_: object) -> None:
    """A warm shutdown lets the refreshes under way finish (their batches wait for them
    already; this covers a pool that stopped without waiting)."""
    process_context().fanout.shutdown()


@task_failure.connect
def _fetch_lost(sender: Task, task_id: str, exception: BaseException, args: list[Any],
                **_: object) -> None:
    """A fetch's process died or hit the hard time limit: answer its waiters now.

    Runs in the worker's main process; without it the waiters would wait out their
    timeout and the lock would block the resource until it expires.
    """
    if sender.name not in (FETCH_TASK, REFRESH_TASK, REFRESH_BATCH_TASK):
        return
    if isinstance(exception, WorkerLostError):
        outcome = Outcome.failed(FetchFailed("the fetch's worker process was lost"))
    elif isinstance(exception, TimeLimitExceeded):
        outcome = Outcome.failed(UpstreamTimeout("fetch took longer than its time limit"))
    else:
        return
    if sender.name == REFRESH_BATCH_TASK:
        lost = [Flight(resource, f"{task_id}:{resource}", leader=True) for resource, _ in args[1]]
    else:
        token = args[1] if sender.name == FETCH_TASK else task_id
        lost = [Flight(args[0], token, leader=True)]
    for flight in lost:
        log.error("fetch lost", extra={"resource": flight.resource, "error": repr(exception)})
        process_context().flights.finish(flight, outcome)
