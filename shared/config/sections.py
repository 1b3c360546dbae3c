"""Every option declared once: ini section and key, environment variable, default, and
whether a running process applies a change (``live``). ``Settings`` holds one of each
section; the loader (settings.py), checks, docs and config.ini.example follow from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config.declare import option
from shared.upstreams.registry import upstreams

MAX_WAIT = 60.0  # longest wait a request may be configured to make for upstream


@dataclass(frozen=True)
class RedisSettings:
    """``[redis]``: where Redis is (a URL, or Sentinels), the broker, timeouts, key prefix."""
    url: str = option(
        "redis://127.0.0.1:6379/0", "REDIS_URL", "Redis for the cache, the schedule and the broker"
    )
    broker_url: str = option(
        "", "BROKER_URL", "A separate Redis for the task queues (empty: the one of REDIS_URL)"
    )
    sentinels: str = option(
        "", "REDIS_SENTINELS",
        "Comma-separated host:port of Redis Sentinels; when set, the master they name is the "
        "cache's and the broker's Redis and REDIS_URL gives only its scheme, user, password "
        "and database",
    )
    sentinel_master: str = option(
        "mymaster", "REDIS_SENTINEL_MASTER", "Name of the master the sentinels watch"
    )
    sentinel_password: str = option(
        "", "REDIS_SENTINEL_PASSWORD",
        "Password of the sentinels themselves (their requirepass); empty: none",
    )
    tls_ca_file: str = option(
        "", "REDIS_TLS_CA_FILE",
        "CA certificate file to verify Redis's (rediss://); empty: the system's CAs",
    )
    max_memory: str = option(
        "256mb", "REDIS_MAX_MEMORY",
        "Memory cap (maxmemory) of the Redis that make run starts; with volatile-lru only "
        "cache entries are evicted at the cap",
    )
    key_prefix: str = option(
        "cachedproxy", "KEY_PREFIX", "Prefix of every Redis key this deployment writes"
    )
    socket_timeout: float = option(
        2.0, "REDIS_SOCKET_TIMEOUT", "Seconds before a Redis command is given up"
    )


@dataclass(frozen=True)
class CacheSettings:
    """``[cache]``: freshness, stale-while-revalidate, stale-if-error, negative TTL, entry size."""
    ttl: int = option(252, "CACHE_TTL", "Seconds an upstream response stays fresh", live=True)
    negative_ttl: int = option(30, "CACHE_NEGATIVE_TTL", "Seconds an upstream 404 is remembered",
                               live=True)
    stale_while_revalidate: int = option(
        60, "CACHE_STALE_WHILE_REVALIDATE",
        "Seconds past freshness an entry is served at once while one refresh runs", live=True)
    max_entry_bytes: int = option(
        4_194_304, "CACHE_MAX_ENTRY_BYTES",
        "Largest data one resource may store, in bytes; a larger upstream answer is a 502",
        live=True,
    )
    stale_if_error: int = option(
        86400, "CACHE_STALE_IF_ERROR",
        "Seconds past freshness an entry is served when upstream fails", live=True)


@dataclass(frozen=True)
class WorkerSettings:
    """``[worker]``: the worker's pool and concurrency."""
    pool: str = option(
        "threads", "WORKER_POOL",
        "threads: tasks run on threads of one process, a request in flight costs a thread; "
        "prefork: a process each (Celery's hard time limits kill a stuck one)",
    )
    concurrency: int = option(
        64, "WORKER_CONCURRENCY",
        "Tasks a worker runs at once (threads or processes, by worker.pool): misses' "
        "fetches and batches of refreshes (celery --concurrency overrides)",
    )


@dataclass(frozen=True)
class RefreshSettings:
    """``[refresh]``: when live resources are refreshed, retried and let go idle."""
    ratio: float = option(
        0.8, "REFRESH_RATIO", "Refresh a live resource after this fraction of its TTL", live=True
    )
    idle_timeout: int = option(
        1800, "REFRESH_IDLE_TIMEOUT", "Seconds without reads before a resource stops refreshing",
        live=True)
    tick_interval: float = option(
        1.0, "REFRESH_TICK_INTERVAL", "Seconds between beat's ticks that claim due refreshes"
    )
    max_claims: int = option(
        200, "REFRESH_MAX_CLAIMS", "Refreshes one tick claims at most", live=True
    )
    retry_base: float = option(
        2.0, "REFRESH_RETRY_BASE", "Seconds before the first retry of a failed refresh", live=True
    )
    retry_max: float = option(
        300.0, "REFRESH_RETRY_MAX", "Longest wait between retries of a failing refresh", live=True
    )
    probe_max: float = option(
        5.0, "REFRESH_PROBE_MAX",
        "Longest wait between probes of a failing upstream (one request each)", live=True,
    )
    min_ttl: int = option(
        0, "REFRESH_MIN_TTL",
        "Shortest TTL an upstream's budget plan may give a resource read much and changing "
        "often, when the budget cannot pay for every TTL; 0: the TTL", live=True)
    max_age: int = option(
        3600, "REFRESH_MAX_AGE",
        "Longest TTL a budget plan may give a resource (at least the TTL): while upstream "
        "answers, no data is served unchecked longer", live=True)
    plan_interval: float = option(
        15.0, "REFRESH_PLAN_INTERVAL", "Seconds between budget plans (beat's plan entry)")


@dataclass(frozen=True)
class UpstreamSettings:
    """``[upstream]``: what every upstream client shares (timeouts, in flight, miss share)."""
    connect_timeout: float = option(
        3.05, "UPSTREAM_CONNECT_TIMEOUT", "Seconds to connect to an upstream", live=True
    )
    read_timeout: float = option(
        10.0, "UPSTREAM_READ_TIMEOUT", "Seconds to wait for an upstream's response", live=True
    )
    max_in_flight: int = option(
        32, "UPSTREAM_MAX_IN_FLIGHT",
        "Requests to one upstream a worker process has in flight at once (an upstream's "
        "own max_in_flight overrides); also its keep-alive connections", live=True,
    )
    miss_share: float = option(
        0.5, "UPSTREAM_MISS_SHARE",
        "Share of an upstream's request budget misses may spend (0-1]; the rest is kept "
        "for refreshes. A miss over it is 503 budget_spent with Retry-After", live=True,
    )


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: where the API listens, its processes and threads, and how long misses wait."""
    host: str = option("127.0.0.1", "API_HOST", "Address the API listens on")
    port: int = option(8080, "API_PORT", "Port the API listens on")
    workers: int = option(2, "API_WORKERS", "API server processes")
    threads: int = option(
        64, "API_THREADS",
        "Threads of each API process for requests that wait on Redis or upstream (a miss "
        "waiting holds one; hits from the process's copy need none)")
    miss_wait_timeout: float = option(
        10.0, "API_MISS_WAIT_TIMEOUT", "Seconds a cache miss waits for its fetch (then 504)",
        live=True)
    stale_wait_timeout: float = option(
        2.0, "API_STALE_WAIT_TIMEOUT",
        "Seconds a request with stale data to fall back on waits for upstream", live=True)


@dataclass(frozen=True)
class FlowerSettings:
    # FLOWER_* variables are also read by Flower itself, so only its own names are used.
    """``[flower]``: Flower's address and login."""

    address: str = option("127.0.0.1", "FLOWER_ADDRESS", "Address Flower listens on")
    port: int = option(5555, "FLOWER_PORT", "Port Flower listens on")
    basic_auth: str = option(
        "", "FLOWER_BASIC_AUTH",
        "user:password for Flower (comma-separated for several); empty: generated at first run",
    )
    max_tasks: int = option(
        2000, "FLOWER_MAX_TASKS", "Tasks Flower keeps in memory; its memory grows with them",
    )


@dataclass(frozen=True)
class ConsulSettings:
    # Where the Consul configuration comes from cannot itself come from Consul.
    """``[consul]``: the Consul agent and KV prefix settings are followed from."""

    address: str = option(
        "", "CONSUL_HTTP_ADDR", "Consul agent host:port (or URL); empty: no Consul"
    )
    prefix: str = option("cachedproxy", "CONSUL_PREFIX", "KV prefix: <prefix>/<section>/<key>")
    token: str = option("", "CONSUL_HTTP_TOKEN", "Consul ACL token (sent as X-Consul-Token)")


@dataclass(frozen=True)
class AccessSettings:
    """``[access]``: API keys, rate limits, trusted proxies and CORS."""
    keys: str = option(
        "", "API_KEYS",
        "API keys as name:<sha256 hex of the key>, comma-separated (python -m api.keys new "
        "<name> makes one)", live=True,
    )
    require_keys: str = option(
        "auto", "API_REQUIRE_KEYS",
        "auto (required when any are configured; an API listening off loopback without "
        "keys refuses to start), on or off", live=True,
    )
    metrics_keys: str = option(
        "", "METRICS_KEYS",
        "Keys for /metrics alone, as API_KEYS; empty: /metrics takes the API keys", live=True,
    )
    rate_limit: str = option(
        "", "API_RATE_LIMIT",
        "Requests per client, e.g. 50/second;1000/minute (per key, or per address without "
        "keys); empty: no limit", live=True,
    )
    miss_rate_limit: str = option(
        "", "API_MISS_RATE_LIMIT",
        "Requests per client that start an upstream fetch, e.g. 5/second;100/minute (per "
        "key, or per address without keys); over it 429, hits unaffected; empty: no limit",
        live=True,
    )
    cors_origins: str = option(
        "", "API_CORS_ORIGINS",
        "Origins browsers may read the API from, comma-separated; empty: none (CORS off)",
        live=True,
    )
    trusted_proxies: str = option(
        "", "API_TRUSTED_PROXIES",
        "Proxies (addresses or CIDR) whose X-Forwarded-For gives the client's address",
        live=True,
    )


@dataclass(frozen=True)
class AdminSettings:
    """``[admin]``: the admin API's token."""
    token: str = option(
        "", "ADMIN_TOKEN",
        "Bearer token of the admin API (/admin/); empty: the admin API is off (404)", live=True,
    )


@dataclass(frozen=True)
class LogSettings:
    """``[log]``: the log level."""
    level: str = option("INFO", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", live=True)


@dataclass(frozen=True)
class Settings:
    """Every section, and each upstream's own, as one frozen value built once per process."""
    redis: RedisSettings = field(default_factory=RedisSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    flower: FlowerSettings = field(default_factory=FlowerSettings)
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    log: LogSettings = field(default_factory=LogSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    # Each upstream's own section, by name (shared/upstreams/registry.py).
    upstreams: Mapping[str, Any] = field(
        default_factory=lambda: {name: u.section() for name, u in upstreams().items()})

    def ttl_for(self, upstream: str) -> int:
        """The TTL of an upstream's resources: its own ``ttl`` if set, else cache.ttl."""
        own = getattr(self.upstreams.get(upstream), "ttl", 0)
        return own or self.cache.ttl

    def in_flight_for(self, upstream: str) -> int:
        """An upstream's requests in flight per worker: its own, else upstream's."""
        own = getattr(self.upstreams.get(upstream), "max_in_flight", 0)
        return own or self.upstream.max_in_flight

    def section(self, name: str) -> Any:
        """A section by name: a core one (``cache``) or an upstream's (its name)."""
        return self.upstreams[name] if name in self.upstreams else getattr(self, name)

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some options changed, e.g. ``replace(cache={"ttl": 5})``; whether
        they hold together is for ``shared.config.checks.validate`` to say."""
        upstreams = dict(self.upstreams)
        core = {}
        for name, values in sections.items():
            if name in upstreams:
                upstreams[name] = dataclasses.replace(upstreams[name], **values)
            else:
                core[name] = dataclasses.replace(getattr(self, name), **values)
        return dataclasses.replace(self, **core, upstreams=upstreams)
