"""The API's Prometheus metrics and the /metrics page.

Request metrics are kept per process by prometheus_client; under ``python -m api`` the
server processes share them through its multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set up by api/__main__.py), so a scrape of any process sums all of them. What the workers
count comes from Redis (shared/telemetry/metrics.py). Recording a request writes nothing to Redis.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from shared.policy.serving import Served
from shared.telemetry.metrics import RedisCollector

REQUESTS = Counter("cachedproxy_http_requests", "API requests by route and status",
                   ["route", "method", "status"])
LATENCY = Histogram("cachedproxy_http_request_duration_seconds", "API request latency",
                    ["route"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5, 1.0, 2.5, 5.0, 10.0))
OUTCOMES = Counter("cachedproxy_cache_outcomes", "How view requests were served, by view: "
                   "hit, miss, collapsed, stale, stale_if_error, negative (a cached 404), local "
                   "(a process's own copy while Redis is unreachable), error",
                   ["view", "outcome"])


# labels() validates and locks on every call; the hot path keeps its children here.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe(route: str, method: str, status: int, served: Served | None,
            seconds: float, view: str = "") -> None:
    """Count one request and its duration, by route, method, status, and (a view's) how
    it was served."""
    _child(REQUESTS, route, method, str(status)).inc()
    _child(LATENCY, route).observe(seconds)
    if served is not None:
        _child(OUTCOMES, view, served.value).inc()


def renderer(redis_collector: RedisCollector) -> Callable[[], tuple[bytes, str]]:
    """The /metrics body: this API's metrics (all its processes') and the workers'."""
    from_redis = CollectorRegistry(auto_describe=False)
    from_redis.register(redis_collector)

    def render() -> tuple[bytes, str]:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            local = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(local)
        else:
            local = REGISTRY
        return generate_latest(local) + generate_latest(from_redis), CONTENT_TYPE_LATEST

    return render
