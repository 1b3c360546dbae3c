"""The worker's liveness record: a heartbeat in Redis, read by the API's /readyz."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis
from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

from shared.health import worker_gone, worker_seen
from shared.keys import Keys
from shared.settings import load_settings

_client: tuple[redis.Redis, Keys] | None = None


def _store() -> tuple[redis.Redis, Keys]:
    global _client  # one client per main process, made on the first heartbeat
    if _client is None:
        settings = load_settings()
        _client = (redis.Redis.from_url(settings.redis.url,
                                        socket_timeout=settings.redis.socket_timeout),
                   Keys(settings.redis.key_prefix))
    return _client


def _hostname(sender: Any) -> str | None:
    name = getattr(sender, "hostname", None)
    if name is None and getattr(sender, "eventer", None) is not None:
        name = sender.eventer.hostname
    return name


@worker_ready.connect
@heartbeat_sent.connect
def _beat(sender: Any = None, **_: object) -> None:
    hostname = _hostname(sender)
    if hostname:
        with contextlib.suppress(redis.RedisError):  # Redis away: /readyz says so itself
            worker_seen(*_store(), hostname, time.time())


@worker_shutdown.connect
def _gone(sender: Any = None, **_: object) -> None:
    hostname = _hostname(sender)
    if hostname:
        with contextlib.suppress(redis.RedisError):
            worker_gone(*_store(), hostname)
