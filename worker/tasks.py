"""Celery tasks: fetch one resource into the cache and tell the waiting requests."""

from __future__ import annotations

import logging
import time

from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import task_failure

from shared.catalog import kind_of
from shared.entry import keep_until, not_found
from shared.errors import CachedProxyError, FetchFailed, NotFound, UpstreamTimeout
from shared.flight import Flight, Outcome
from shared.queue import FETCH_TASK
from shared.settings import load_settings
from worker import app
from worker.context import WorkerContext
from worker.fetch import fetch

log = logging.getLogger(__name__)


class ContextTask(Task):
    """A task with the process's WorkerContext, built on first use after the fork."""

    _context: WorkerContext | None = None

    @property
    def context(self) -> WorkerContext:
        if ContextTask._context is None:
            ContextTask._context = WorkerContext.from_settings(load_settings())
        return ContextTask._context


def refresh(ctx: WorkerContext, resource: str) -> Outcome:
    """Fetch a resource (conditionally when cached) and store what upstream said.

    Upstream errors leave the stored entry as it was; a 404 is remembered briefly.
    """
    kind = kind_of(resource)
    client = ctx.upstreams[kind.upstream]
    cache = ctx.settings.cache
    previous = ctx.entries.read([resource])[0]
    started = time.perf_counter()
    try:
        result = fetch(client, kind, resource, previous, ctx.clock(), cache.ttl)
        kept = keep_until(result.entry, cache.stale_if_error)
        if not result.changed and not ctx.entries.revalidate(resource, result.entry, kept):
            # The entry expired while upstream said 304: take the data whole.
            result = fetch(client, kind, resource, None, ctx.clock(), cache.ttl)
            kept = keep_until(result.entry, cache.stale_if_error)
        if result.changed:
            ctx.entries.save(resource, result.entry, kept)
    except NotFound as exc:
        entry = not_found(ctx.clock(), cache.negative_ttl)
        ctx.entries.save(resource, entry, keep_until(entry, cache.stale_if_error))
        log.info("fetched", extra=_fields(resource, started, outcome="not_found"))
        return Outcome.failed(exc)
    except CachedProxyError as exc:
        log.warning("fetch failed", extra=_fields(resource, started, outcome=exc.code,
                                                  error=exc.message))
        return Outcome.failed(exc)
    log.info("fetched", extra=_fields(
        resource, started, outcome="modified" if result.changed else "not_modified",
        upstream_requests=result.requests,
    ))
    return Outcome()


def _fields(resource: str, started: float, **extra: object) -> dict[str, object]:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"resource": resource, "duration_ms": duration_ms, **extra}


@app.task(bind=True, base=ContextTask, name=FETCH_TASK)
def fetch_resource(self: ContextTask, resource: str, token: str) -> str:
    """Fetch one resource for the flight ``token`` and publish its outcome."""
    ctx = self.context
    outcome = Outcome.failed(CachedProxyError("fetch failed unexpectedly"))
    try:
        outcome = refresh(ctx, resource)
    except SoftTimeLimitExceeded:
        outcome = Outcome.failed(UpstreamTimeout("fetch took longer than its time limit"))
    finally:
        ctx.flights.finish(Flight(resource, token, leader=True), outcome)
    return outcome.code


@task_failure.connect(sender=fetch_resource)
def _fetch_lost(exception: BaseException, args: list[str], **_: object) -> None:
    """The fetch's process died or hit the hard time limit: answer its waiters now.

    Runs in the worker's main process; without it the waiters would wait out their
    timeout and the lock would block the resource until it expires.
    """
    if isinstance(exception, WorkerLostError):
        outcome = Outcome.failed(FetchFailed("the fetch's worker process was lost"))
    elif isinstance(exception, TimeLimitExceeded):
        outcome = Outcome.failed(UpstreamTimeout("fetch took longer than its time limit"))
    else:
        return
    resource, token = args
    log.error("fetch lost", extra={"resource": resource, "error": repr(exception)})
    fetch_resource.context.flights.finish(Flight(resource, token, leader=True), outcome)
