"""The worker's liveness record (a heartbeat in Redis, read by the API's /readyz), and
what a worker restarted after being killed does about the fetches it was running."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis
from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

from shared.errors import FetchFailed
from shared.store.flights import Outcome
from shared.store.health import worker_gone, worker_seen
from shared.store.keys import Keys
from worker.context import process_context

log = logging.getLogger(__name__)

# Set once the worker is shutting down: the last heartbeat (the "worker-offline" event,
# which Celery may send after the shutdown signal) must not record it as alive again.
_stopping = False


def _store() -> tuple[redis.Redis, Keys]:
    ctx = process_context()  # the same the tasks use, settings followed live
    return ctx.redis, ctx.keys


def _hostname(sender: Any) -> str | None:
    name = getattr(sender, "hostname", None)
    if name is None and getattr(sender, "eventer", None) is not None:
        name = sender.eventer.hostname
    return name


@worker_ready.connect
@heartbeat_sent.connect
def _beat(sender: Any = None, **_: object) -> None:
    hostname = _hostname(sender)
    if hostname and not _stopping:
        with contextlib.suppress(redis.RedisError):  # Redis away: /readyz says so itself
            worker_seen(*_store(), hostname, time.time())


@worker_ready.connect
def _fail_abandoned(sender: Any = None, **_: object) -> None:
    """A worker starting under a name that was killed with fetches running (SIGKILL of
    its main process, the machine gone): those flights get their answer now, 503
    fetch_failed, and their resources are free for the next request."""
    hostname = _hostname(sender)
    if not hostname:
        return
    try:
        lost = process_context().flights.fail_abandoned(hostname, Outcome.failed(
            FetchFailed("the worker running the fetch was killed")))
    except redis.RedisError as exc:
        log.warning("could not check for abandoned fetches", extra={"error": repr(exc)})
        return
    for flight in lost:
        log.error("fetch lost with its worker", extra={"resource": flight.resource})


@worker_shutdown.connect
def _gone(sender: Any = None, **_: object) -> None:
    global _stopping
    _stopping = True
    hostname = _hostname(sender)
    if hostname:
        with contextlib.suppress(redis.RedisError):
            worker_gone(*_store(), hostname)
