"""What a worker process needs, built once per process and shared by its tasks and its
heartbeat: the settings (followed live), one Redis client, the stores and upstream clients."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from shared.config.live import LiveSettings, process_settings
from shared.config.settings import Settings
from shared.store.breaker import UpstreamBreaker
from shared.store.budget import UpstreamBudget
from shared.store.client import connect
from shared.store.entries import EntryStore
from shared.store.flights import Flights
from shared.store.freshness import FreshnessStore
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from shared.telemetry.metrics import WorkerMetrics
from shared.upstreams.registry import subscribe, upstreams
from worker.fanout import Fanout
from worker.upstream import UpstreamClient


def upstream_clients(settings: Settings) -> dict[str, UpstreamClient]:
    """An HTTP client per upstream of the catalogue, with its endpoint and timeouts."""
    clients = {}
    for name, upstream in upstreams().items():
        endpoint = upstream.endpoint(settings.upstreams[name])
        clients[name] = UpstreamClient(
            endpoint, endpoint.connect_timeout or settings.upstream.connect_timeout,
            endpoint.read_timeout or settings.upstream.read_timeout,
            max_in_flight=settings.in_flight_for(name))
    return clients


@dataclass
class WorkerContext:
    """What a worker process's tasks share: its Redis, stores, upstream clients, metrics
    and the settings in force (followed live)."""

    current: Callable[[], Settings]  # the settings in force now
    redis: redis.Redis
    keys: Keys
    entries: EntryStore
    flights: Flights
    schedule: Schedule
    metrics: WorkerMetrics
    breaker: UpstreamBreaker
    budget: UpstreamBudget
    freshness: FreshnessStore
    upstreams: dict[str, UpstreamClient]
    fanout: Fanout = field(default_factory=Fanout)
    clock: Callable[[], float] = field(default=time.time)

    @property
    def settings(self) -> Settings:
        """The settings in force now."""
        return self.current()

    @classmethod
    def from_live(cls, live: LiveSettings) -> WorkerContext:
        """The context of this process, built from its live settings."""
        settings = live.get()
        client = connect(settings.redis)
        keys = Keys(settings.redis.key_prefix)
        ctx = cls(live.get, client, keys, EntryStore(client, keys), Flights(client, keys),
                  Schedule(client, keys), WorkerMetrics(client, keys),
                  UpstreamBreaker(client, keys), UpstreamBudget(client, keys),
                  FreshnessStore(client, keys), upstream_clients(settings))

        def on_change(old: Settings, new: Settings) -> None:
            if (old.upstreams, old.upstream) != (new.upstreams, new.upstream):
                # New token, timeouts, page size, max_in_flight (requests under way finish
                # on the clients they started with).
                ctx.upstreams = upstream_clients(new)
            for upstream in ctx.upstreams:
                period = new.ttl_for(upstream) * new.refresh.ratio
                if period < old.ttl_for(upstream) * old.refresh.ratio:
                    # Refreshes planned under the longer period would come too late.
                    ctx.schedule.pull_in(f"{upstream}:", ctx.clock(), period)

        def on_catalogue() -> None:
            ctx.upstreams = upstream_clients(ctx.settings)  # new endpoints, auth, headers

        live.subscribe(on_change)
        subscribe(on_catalogue)
        return ctx


_process: tuple[int, WorkerContext] | None = None


def process_context() -> WorkerContext:
    """This process's context, built on first use; a forked pool process builds its own
    (sockets and the settings watcher do not cross a fork)."""
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(), WorkerContext.from_live(process_settings()))
    return _process[1]
