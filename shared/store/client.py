"""The one way this project makes a Redis client: the configured URL and timeouts.

With ``REDIS_SENTINELS`` the client talks to the master the sentinels name and asks them
again whenever a connection is made, so it follows a failover by itself: commands fail
while no master is known, then reach the promoted replica. A connection to a master
that was demoted is closed by Sentinel (or on its first READONLY reply) and remade.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from shared.config.checks import sentinel_addresses
from shared.config.settings import RedisSettings

HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is checked on use


def _tls(settings: RedisSettings) -> dict[str, Any]:
    return {"ssl_cert_reqs": "required", "ssl_ca_certs": settings.tls_ca_file or None}


def sentinel_options(settings: RedisSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options of a connection to the master, options of a connection to a sentinel)
    when ``settings.sentinels`` is set: the master's credentials, database and TLS come
    from ``settings.url``; the sentinels take TLS alike, their own password, and the
    same timeouts, so a sentinel that is down costs one connect timeout, not a hang."""
    url = urlsplit(settings.url)
    timeouts = {"socket_timeout": settings.socket_timeout,
                "socket_connect_timeout": settings.socket_timeout}
    path = url.path.strip("/")
    master: dict[str, Any] = {
        "db": int(path) if path.isdigit() else 0,
        "username": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        **timeouts,
    }
    sentinel: dict[str, Any] = {"password": settings.sentinel_password or None, **timeouts}
    if url.scheme == "rediss":
        master.update(ssl=True, **_tls(settings))
        sentinel.update(ssl=True, **_tls(settings))
    return master, sentinel


@functools.lru_cache(maxsize=4)
def sentinels(settings: RedisSettings) -> Sentinel:
    """The process's one manager of the sentinels these settings name: every client of
    the master asks them through it (its connections to them are shared)."""
    _, sentinel_kwargs = sentinel_options(settings)
    return Sentinel(sentinel_addresses(settings.sentinels), sentinel_kwargs=sentinel_kwargs)


def connect(settings: RedisSettings, socket_timeout: float | None = None,
            broker: bool = False, retries: int | None = None) -> redis.Redis:
    """A client of the cache's Redis (``broker``: of the task queues' Redis, the same one
    unless BROKER_URL names another). ``socket_timeout`` (default: redis.socket_timeout)
    must outlast any blocking command the client is used for. ``retries``: how often a
    command that lost its connection is tried again, at once (default: redis-py's, up to
    10 with back-off, about 3.5 s in all while Redis is down)."""
    extra: dict[str, Any] = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    timeout = settings.socket_timeout if socket_timeout is None else socket_timeout
    if settings.sentinels and not (broker and settings.broker_url):
        master, _ = sentinel_options(settings)
        master["socket_timeout"] = timeout
        return sentinels(settings).master_for(settings.sentinel_master, redis_class=redis.Redis,
                                    health_check_interval=HEALTH_CHECK_INTERVAL,
                                    **master, **extra)
    url = (settings.broker_url or settings.url) if broker else settings.url
    if url.startswith("rediss://"):
        extra.update(_tls(settings))
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=settings.socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        **extra,
    )
