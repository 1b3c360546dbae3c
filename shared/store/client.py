"""The one way this project makes a Redis client: the configured URL and timeouts."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config.settings import RedisSettings

HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is checked on use


def connect(settings: RedisSettings, socket_timeout: float | None = None,
            broker: bool = False, retries: int | None = None) -> redis.Redis:
    """A client of the cache's Redis (``broker``: of the task queues' Redis, the same one
    unless BROKER_URL names another). ``socket_timeout`` (default: redis.socket_timeout)
    must outlast any blocking command the client is used for. ``retries``: how often a
    command that lost its connection is tried again, at once (default: redis-py's, up to
    10 with back-off, about 3.5 s in all while Redis is down)."""
    extra: dict[str, Any] = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    url = (settings.broker_url or settings.url) if broker else settings.url
    if url.startswith("rediss://"):
        extra.update(ssl_cert_reqs="required", ssl_ca_certs=settings.tls_ca_file or None)
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout if socket_timeout is None else socket_timeout,
        socket_connect_timeout=settings.socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        **extra,
    )
