"""The one way this project makes a Redis client: the configured URL and timeouts."""

from __future__ import annotations

import redis

from shared.config.settings import RedisSettings

HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is checked on use


def connect(settings: RedisSettings, socket_timeout: float | None = None,
            broker: bool = False) -> redis.Redis:
    """A client of the cache's Redis (``broker``: of the task queues' Redis, the same one
    unless BROKER_URL names another). ``socket_timeout`` (default: redis.socket_timeout)
    must outlast any blocking command the client is used for."""
    return redis.Redis.from_url(
        (settings.broker_url or settings.url) if broker else settings.url,
        socket_timeout=settings.socket_timeout if socket_timeout is None else socket_timeout,
        socket_connect_timeout=settings.socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
