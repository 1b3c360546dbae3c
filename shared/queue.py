"""The task queue: Celery settings and the names of the tasks the API enqueues."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from kombu import Exchange, Queue

from shared.config.checks import sentinel_addresses
from shared.config.settings import Settings
from shared.store.client import sentinel_options
from shared.store.flights import FETCH_SOFT_TIME_LIMIT, FETCH_TIME_LIMIT
from shared.store.keys import Keys

FETCH_TASK = "cachedproxy.fetch"
REFRESH_TASK = "cachedproxy.refresh"
REFRESH_BATCH_TASK = "cachedproxy.refresh_batch"
TICK_TASK = "cachedproxy.tick"
PLAN_TASK = "cachedproxy.plan"
FETCH_QUEUE = "fetch"  # misses: a client is waiting
REFRESH_QUEUE = "refresh"  # ticks and refreshes ahead of expiry
QUEUES = (FETCH_QUEUE, REFRESH_QUEUE)

# Tasks go through the default (nameless) exchange straight to their queue. Named
# exchanges on the Redis transport route through _kombu.binding.* keys, and publishing
# fails once those are lost with Redis's data (celery/kombu#1063).
_DIRECT = Exchange("", type="direct")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for cachedproxy: fetches are short, so they are acked early, taken
    one at a time and bounded in run time (by the prefork pool's limits where it is
    chosen; ``worker/refresh.py`` bounds them itself on threads); their outcome travels
    through the flight's result key, not a result backend; task events are on for Flower."""
    broker = settings.redis.broker_url or settings.redis.url
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": settings.redis.tls_ca_file or None}
    secure = broker.startswith("rediss://")
    transport: dict[str, Any] = {}
    if settings.redis.sentinels and not settings.redis.broker_url:
        broker, transport = sentinel_broker(settings)
    return {
        "broker_url": broker,
        # rediss://: verify the server's certificate (against REDIS_TLS_CA_FILE if set).
        "broker_use_ssl": tls if secure else None,
        # Outcomes travel through the flight's result key, not Celery's result backend.
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Fetches are short: ack early, take one at a time, bound their run time.
        "task_acks_late": False,
        "worker_prefetch_multiplier": 1,
        # Fetches wait on upstream: by default tasks run on threads of one process, so a
        # request in flight costs a thread, not a process (docs/BENCHMARKS.md, "Refresh
        # capacity"). Set here, not with ``celery worker --pool``: Celery takes a
        # configured pool over ``--pool prefork``, which it reads as "not chosen".
        "worker_pool": settings.worker.pool,
        "worker_concurrency": settings.worker.concurrency,
        "task_soft_time_limit": FETCH_SOFT_TIME_LIMIT,
        "task_time_limit": FETCH_TIME_LIMIT,
        "broker_transport_options": {
            "visibility_timeout": FETCH_TIME_LIMIT * 4,
            "global_keyprefix": Keys(settings.redis.key_prefix).celery_prefix(),
            **transport,
        },
        "broker_connection_retry_on_startup": True,
        # A Redis error reply (out of memory, read-only during a failover) restarts the
        # consumer like a lost connection does, instead of ending the worker.
        "broker_channel_error_retry": True,
        # Celery 6's default, stated: cancels only late-acked tasks on a lost broker
        # connection, and ours are acked early; leaving it unset warns at every reconnect.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": FETCH_QUEUE,
        "task_default_exchange": "",
        "task_queues": [Queue(q, _DIRECT, routing_key=q) for q in QUEUES],
        "task_routes": {
            FETCH_TASK: {"queue": FETCH_QUEUE, "exchange": "", "routing_key": FETCH_QUEUE},
            REFRESH_TASK: {"queue": REFRESH_QUEUE, "exchange": "", "routing_key": REFRESH_QUEUE},
            REFRESH_BATCH_TASK: {"queue": REFRESH_QUEUE, "exchange": "",
                                 "routing_key": REFRESH_QUEUE},
            TICK_TASK: {"queue": REFRESH_QUEUE, "exchange": "", "routing_key": REFRESH_QUEUE},
            PLAN_TASK: {"queue": REFRESH_QUEUE, "exchange": "", "routing_key": REFRESH_QUEUE},
        },
        # Beat only ticks and plans; the schedule itself lives in Redis
        # (shared/store/schedule.py), and so do the plans (shared/store/freshness.py).
        "beat_schedule": {
            "tick": {
                "task": TICK_TASK,
                "schedule": settings.refresh.tick_interval,
                "options": {"expires": max(5 * settings.refresh.tick_interval, 5.0)},
            },
            "plan": {
                "task": PLAN_TASK,
                "schedule": settings.refresh.plan_interval,
                "options": {"expires": settings.refresh.plan_interval},
            },
        },
        # Task events for Flower.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
    }


def sentinel_broker(settings: Settings) -> tuple[str, dict[str, Any]]:
    """kombu's Sentinel transport for REDIS_SENTINELS: ``sentinel://`` URLs, one per
    sentinel, carrying the master's credentials and database from REDIS_URL, and the
    transport options naming the master and reaching the sentinels."""
    master, sentinel = sentinel_options(settings.redis)
    auth = urlsplit(settings.redis.url).netloc.rpartition("@")[0]
    userinfo = f"{auth}@" if auth else ""
    broker = ";".join(f"sentinel://{userinfo}{f'[{host}]' if ':' in host else host}:{port}"
                      f"/{master['db']}"
                      for host, port in sentinel_addresses(settings.redis.sentinels))
    options = {"master_name": settings.redis.sentinel_master,
               "sentinel_kwargs": {k: v for k, v in sentinel.items() if v is not None},
               "socket_timeout": master["socket_timeout"],
               "socket_connect_timeout": master["socket_connect_timeout"]}
    return broker, options


def celery_app(settings: Settings, main: str = "cachedproxy") -> Celery:
    """A Celery app for sending tasks (the API) or running them (the worker)."""
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
