"""What a worker process needs, built once per process; settings follow Consul live."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from shared.config.live import LiveSettings, apply_log_level
from shared.config.settings import Settings
from shared.store.breaker import UpstreamBreaker
from shared.store.entries import EntryStore
from shared.store.flights import Flights
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from shared.telemetry.metrics import WorkerMetrics
from shared.upstreams.registry import UPSTREAMS
from worker.upstream import UpstreamClient


def upstream_clients(settings: Settings) -> dict[str, UpstreamClient]:
    timeouts = settings.upstream.connect_timeout, settings.upstream.read_timeout
    return {name: UpstreamClient(upstream.endpoint(settings.upstreams[name]), *timeouts)
            for name, upstream in UPSTREAMS.items()}


@dataclass
class WorkerContext:
    current: Callable[[], Settings]  # the settings in force now
    redis: redis.Redis
    entries: EntryStore
    flights: Flights
    schedule: Schedule
    metrics: WorkerMetrics
    breaker: UpstreamBreaker
    upstreams: dict[str, UpstreamClient]
    clock: Callable[[], float] = field(default=time.time)

    @property
    def settings(self) -> Settings:
        return self.current()

    @classmethod
    def from_live(cls, live: LiveSettings) -> WorkerContext:
        settings = live.get()
        client = redis.Redis.from_url(
            settings.redis.url,
            socket_timeout=settings.redis.socket_timeout,
            socket_connect_timeout=settings.redis.socket_timeout,
            health_check_interval=30,
        )
        keys = Keys(settings.redis.key_prefix)
        ctx = cls(live.get, client, EntryStore(client, keys), Flights(client, keys),
                  Schedule(client, keys), WorkerMetrics(client, keys),
                  UpstreamBreaker(client, keys), upstream_clients(settings))

        def on_change(old: Settings, new: Settings) -> None:
            if (old.upstreams, old.upstream) != (new.upstreams, new.upstream):
                ctx.upstreams = upstream_clients(new)  # new token, timeouts, page size
            for upstream in ctx.upstreams:
                period = new.ttl_for(upstream) * new.refresh.ratio
                if period < old.ttl_for(upstream) * old.refresh.ratio:
                    # Refreshes planned under the longer period would come too late.
                    ctx.schedule.pull_in(f"{upstream}:", ctx.clock(), period)

        live.subscribe(on_change)
        live.subscribe(apply_log_level)
        return ctx
