"""What a worker process needs, built once per process from its settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from shared import c42
from shared.flight import Flights
from shared.keys import Keys
from shared.schedule import Schedule
from shared.settings import Settings
from shared.store import EntryStore
from worker.upstream import UpstreamClient


@dataclass
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    entries: EntryStore
    flights: Flights
    schedule: Schedule
    upstreams: dict[str, UpstreamClient]
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        client = redis.Redis.from_url(
            settings.redis.url,
            socket_timeout=settings.redis.socket_timeout,
            socket_connect_timeout=settings.redis.socket_timeout,
            health_check_interval=30,
        )
        keys = Keys(settings.redis.key_prefix)
        upstreams = {
            c42.UPSTREAM: UpstreamClient(
                settings.c42.base_url,
                settings.c42.token,
                settings.upstream.connect_timeout,
                settings.upstream.read_timeout,
                settings.c42.page_size,
            )
        }
        return cls(settings, client, EntryStore(client, keys), Flights(client, keys),
                   Schedule(client, keys), upstreams)
