"""Worker-side metrics kept in Redis, and the Prometheus collector that exposes them.

Workers may run as many processes on many hosts, so what they count (upstream requests
by resource kind and status, upstream latency, how late refreshes run) is added to one
Redis hash with HINCRBY / HINCRBYFLOAT: one pipeline per fetch, exact however many
workers there are. The API's /metrics reads that hash, the live-set size, the number of
cached entries and the queue lengths in one round trip at scrape time.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from shared.store.health import WORKER_GONE_AFTER
from shared.store.keys import Keys
from shared.store.status import count_spent
from shared.telemetry.status_metrics import status_metrics

UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
SEP = "|"
ENTRY_SCAN_LIMIT = 100_000  # counting entries is a SCAN; bounded per scrape


def _bucket(value: float, buckets: Sequence[float]) -> str:
    i = bisect.bisect_left(buckets, value)
    return repr(buckets[i]) if i < len(buckets) else "+Inf"


class WorkerMetrics:
    """What a worker records; every call is one pipeline."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self.key = keys.metrics()

    def upstream(self, upstream: str, kind: str, responses: Sequence[tuple[str, float]],
                 now: float) -> None:
        """Upstream answers of one fetch: (status or 'timeout'/'error', seconds) each;
        all of them spent from the upstream's budget."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.key, SEP.join(("spent", upstream)), len(responses))
            count_spent(pipe, self.keys, upstream, len(responses), now)
            for status, seconds in responses:
                pipe.hincrby(self.key, SEP.join(("upstream_requests", kind, status)), 1)
                pipe.hincrby(self.key, SEP.join(
                    ("upstream_seconds_bucket", kind, _bucket(seconds, UPSTREAM_BUCKETS))), 1)
                pipe.hincrbyfloat(self.key, SEP.join(("upstream_seconds_sum", kind)), seconds)
            pipe.execute()

    def checked(self, pipe: redis.client.Pipeline, upstream: str, changed: bool,
                requests: int) -> None:
        """Queue on ``pipe``: a refresh of a stored resource spent ``requests`` upstream
        requests and found a change or none."""
        found = "change" if changed else "no_change"
        pipe.hincrby(self.key, SEP.join(("check_requests", upstream, found)), requests)

    def refresh_lag(self, upstream: str, *seconds: float) -> None:
        """How late refreshes of an upstream ran against the time they were due, in one
        round trip."""
        if not seconds:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for lag in seconds:
                pipe.hincrby(self.key, SEP.join(
                    ("lag_bucket", upstream, _bucket(lag, LAG_BUCKETS))), 1)
            pipe.hincrbyfloat(self.key, SEP.join(("lag_sum", upstream)),
                              sum(max(lag, 0.0) for lag in seconds))
            pipe.execute()


def plan_metrics(plans: dict[str, Any]) -> Iterator[Metric]:
    """Gauges of each upstream's last budget plan (worker/planning.py)."""
    planned = GaugeMetricFamily(
        "cachedproxy_plan_active", "1: the upstream's budget cannot pay for every TTL and "
        "its plan gives each resource its own; 0: every resource keeps the TTL",
        labels=["upstream"])
    budget = GaugeMetricFamily("cachedproxy_plan_budget_per_second", "Requests a second "
                               "the upstream's refreshes may make (absent: no limit)",
                               labels=["upstream"])
    spending = GaugeMetricFamily("cachedproxy_plan_requests_per_second", "Requests a second "
                                 "the plan's refreshes make, by the model", labels=["upstream"])
    fresh = GaugeMetricFamily("cachedproxy_plan_predicted_freshness", "Read-weighted share "
                              "of answers the same as upstream, by the model",
                              labels=["upstream"])
    changes = GaugeMetricFamily("cachedproxy_change_interval_seconds", "Estimated mean "
                                "seconds between upstream changes of live resources, at "
                                "quantiles over them", labels=["upstream", "quantile"])
    for upstream, summary in sorted(plans.items()):
        try:
            active = 1.0 if summary["active"] else 0.0
            rate = None if summary["budget_per_s"] is None else float(summary["budget_per_s"])
            spent, predicted = float(summary["requests_per_s"]), float(
                summary["predicted_freshness"])
            quantiles = {q: float(s) for q, s in summary["change_interval_s"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # not a summary the plan task writes: no gauges rather than no scrape
        planned.add_metric([upstream], active)
        if rate is not None:
            budget.add_metric([upstream], rate)
        spending.add_metric([upstream], spent)
        fresh.add_metric([upstream], predicted)
        for quantile, seconds in quantiles.items():
            changes.add_metric([upstream, quantile], seconds)
    yield from (planned, budget, spending, fresh, changes)


def cumulative(counts: dict[str, int], buckets: Sequence[float]) -> list[tuple[str, float]]:
    total, out = 0, []
    for le in [*map(repr, buckets), "+Inf"]:
        total += counts.get(le, 0)
        out.append((le, float(total)))
    return out


class RedisCollector:
    """A prometheus_client collector reading the worker metrics and Redis gauges."""

    def __init__(self, client: redis.Redis, keys: Keys, queues: Sequence[str],
                 upstream_of: Callable[[str], str], broker: redis.Redis | None = None,
                 status: Callable[[float], list[dict[str, Any]]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.keys = keys
        self.queues = queues  # the broker's queue list keys
        self.upstream_of = upstream_of  # resource -> its upstream's name
        self.broker = broker or client
        self.status = status  # now -> each upstream's state (shared/store/status.py)
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """The metrics read from Redis at scrape time."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.metrics())
            pipe.zcard(self.keys.schedule())
            pipe.info("memory")
            pipe.info("stats")
            pipe.hgetall(self.keys.plans())
            now = self.clock()
            pipe.zcount(self.keys.workers(), int((now - WORKER_GONE_AFTER) * 1000), "+inf")
            pipe.get(self.keys.last_tick())
            replies = pipe.execute()
        with self.broker.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.llen(queue)
            lengths = pipe.execute()
        raw: dict[str, Any] = {as_text(k): as_text(v) for k, v in replies[0].items()}
        live, memory, stats = replies[1], replies[2], replies[3]
        plans = {as_text(k): _json(v) for k, v in replies[4].items()}

        if self.status is not None:
            tick = _json(replies[6]) if replies[6] is not None else None
            yield from status_metrics(self.status(now), int(replies[5]),
                                      float(tick) if isinstance(tick, (int, float)) else None)
        spent = CounterMetricFamily("cachedproxy_upstream_spent_requests", "Requests made "
                                    "to an upstream (all of them count in its budget)",
                                    labels=["upstream"])
        requests = CounterMetricFamily(
            "cachedproxy_upstream_requests", "Upstream requests by resource kind and status "
            "(304 counted apart; timeout and error when upstream did not answer)",
            labels=["kind", "status"])
        checks = CounterMetricFamily(
            "cachedproxy_check_requests", "Upstream requests of refreshes of stored data, by "
            "upstream and whether they found a change or none (304, or the same data)",
            labels=["upstream", "found"])
        buckets: dict[str, dict[str, int]] = {}
        sums: dict[str, float] = {}
        lag: dict[str, dict[str, int]] = {}
        lag_sums: dict[str, float] = {}
        for field, value in raw.items():
            name, *labels = field.split(SEP)
            if name == "upstream_requests":
                requests.add_metric(labels, float(value))
            elif name == "upstream_seconds_bucket":
                buckets.setdefault(labels[0], {})[labels[1]] = int(value)
            elif name == "upstream_seconds_sum":
                sums[labels[0]] = float(value)
            elif name == "lag_bucket":
                lag.setdefault(labels[0], {})[labels[1]] = int(value)
            elif name == "lag_sum":
                lag_sums[labels[0]] = float(value)
            elif name == "check_requests":
                checks.add_metric(labels, float(value))
            elif name == "spent":
                spent.add_metric(labels, float(value))
        yield spent
        yield requests
        yield checks
        yield from plan_metrics(plans)
        latency = HistogramMetricFamily(
            "cachedproxy_upstream_duration_seconds", "Upstream request latency",
            labels=["kind"])
        for kind, counts in sorted(buckets.items()):
            latency.add_metric([kind], cumulative(counts, UPSTREAM_BUCKETS), sums.get(kind, 0.0))
        yield latency
        lag_hist = HistogramMetricFamily(
            "cachedproxy_refresh_lag_seconds", "How late refreshes ran against their due time",
            labels=["upstream"])
        for upstream, counts in sorted(lag.items()):
            lag_hist.add_metric([upstream], cumulative(counts, LAG_BUCKETS),
                                lag_sums.get(upstream, 0.0))
        yield lag_hist
        yield GaugeMetricFamily("cachedproxy_live_resources",
                                "Resources in the refresh schedule", value=live)
        entries = GaugeMetricFamily("cachedproxy_cache_entries", "Cache entries in Redis by "
                                    f"upstream (counted up to {ENTRY_SCAN_LIMIT})",
                                    labels=["upstream"])
        size = GaugeMetricFamily("cachedproxy_cache_bytes", "Memory the cache entries of an "
                                 "upstream use in Redis (MEMORY USAGE)", labels=["upstream"])
        for upstream, (count, used) in sorted(self._entries().items()):
            entries.add_metric([upstream], count)
            size.add_metric([upstream], used)
        yield entries
        yield size
        queue_len = GaugeMetricFamily("cachedproxy_queue_length", "Tasks waiting in a queue",
                                      labels=["queue"])
        for queue, length in zip(self.queues, lengths, strict=True):
            queue_len.add_metric([queue.rsplit(":", 1)[-1]], length)
        yield queue_len
        yield GaugeMetricFamily("cachedproxy_redis_used_memory_bytes",
                                "Memory Redis uses (INFO used_memory)",
                                value=float(memory.get("used_memory", 0)))
        yield GaugeMetricFamily("cachedproxy_redis_max_memory_bytes",
                                "Redis's maxmemory (0: no cap)",
                                value=float(memory.get("maxmemory", 0)))
        yield CounterMetricFamily("cachedproxy_redis_evicted_keys",
                                  "Keys Redis evicted for its maxmemory since it started",
                                  value=float(stats.get("evicted_keys", 0)))

    def _entries(self) -> dict[str, tuple[int, int]]:
        """upstream -> (entries, bytes), one SCAN page and one pipeline at a time."""
        found: dict[str, tuple[int, int]] = {}
        entry_prefix = len(self.keys.entry(""))
        cursor, seen = 0, 0
        while seen < ENTRY_SCAN_LIMIT:
            cursor, page = self.redis.scan(cursor, match=self.keys.pattern("entry"), count=1000)
            page = page[:ENTRY_SCAN_LIMIT - seen]
            seen += len(page)
            with self.redis.pipeline(transaction=False) as pipe:
                for key in page:
                    pipe.memory_usage(key, samples=0)
                usages = pipe.execute()
            for key, used in zip(page, usages, strict=True):
                if used is None:  # gone since the SCAN
                    continue
                upstream = self._upstream(as_text(key)[entry_prefix:])
                count, total = found.get(upstream, (0, 0))
                found[upstream] = (count + 1, total + int(used))
            if cursor == 0:
                break
        return found

    def _upstream(self, resource: str) -> str:
        try:
            return self.upstream_of(resource)
        except KeyError:  # its kind left the catalogue; the entry ages out
            return "unknown"


def _json(value: Any) -> Any:
    """A stored JSON value, or None for one that is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return None


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
