"""``python -m benchmarks.capacity``: can the workers keep every live resource fresh?

For each combination of ``--resources`` (live resources, two per event), ``--latency``
(seconds the upstream takes to answer) and ``--pool`` (``gevent:200``, ``prefork:8``, or
``default``: the worker as ``make run`` starts it) it starts Redis, the demo upstream,
one worker, beat and the API, and puts the system in its steady state directly: every
resource stored with the upstream's validators, read recently, and due for refresh at a
time spread evenly over one refresh period (``--ttl`` × refresh ratio). From a fifth of a
period on it reads the views round robin at ``--rate`` requests a second for
``--seconds`` and reports:

- the share of answers that were stale (served past freshness: a refresh came late);
- refresh lag p50 / p99 (``cachedproxy_refresh_lag_seconds``, bucket bounds);
- upstream requests a second, and per resource per refresh period (1.0: each resource
  fetched once a period), and the most requests the upstream saw in flight at once;
- the worker's memory (RSS of its processes) and CPU per refresh: worker, beat and
  Redis together, over the upstream requests made, against a reference measured in the
  same run: a bare ``requests.Session`` conditional GET loop against the same upstream
  plus one Redis ``SET`` a request. With ``--answers 200`` the upstream sends no
  validators, so every refresh (and the reference) takes a whole 200.

With ``--fast N`` a second upstream with N resources, answering in ``--fast-latency``
seconds, is refreshed besides: its requests per resource and period, and the share of
its resources past freshness (sampled from Redis once a second), show whether a slow
upstream starves it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import redis
import requests

from benchmarks import NAMES, demo_upstream, each
from benchmarks.processes import redis_cpu, rss_mb, tree_cpu_seconds
from benchmarks.scale import KEYS, lag_quantiles
from demo.server import DemoUpstream
from launcher.services import celery, free_port
from shared.config.settings import PROJECT_DIR, Settings
from shared.policy.http import http_date
from shared.store.entries import EntryStore
from shared.store.entry import Validator, fetched, keep_until
from shared.store.schedule import Schedule
from shared.upstreams.registry import CATALOGUE_ENV
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

VIEW = "/events-with-subscriptions"


def seed(store: redis.Redis, resources: list[str], ttl: int, period: float,
         validators: bool) -> int:
    """Every resource (an event's or its subscriptions) stored as a fetch would have
    stored it (with a Last-Modified the upstream will answer 304 to, unless
    ``validators`` is off), read now, due evenly over one period; returns how many."""
    entries, schedule = EntryStore(store, KEYS), Schedule(store, KEYS)
    now = time.time()
    stored = (Validator(None, http_date(now + 3600)),) if validators else ()
    pipe = store.pipeline(transaction=False)
    for i, resource in enumerate(resources):
        due = now + period * (i + 0.5) / len(resources)
        kept = ({"id": resource.rsplit(":", 1)[1], "title": f"Event {i}"}
                if ":event:" in resource else {"count": 3, "pages": [NAMES]})
        entry = fetched(kept, stored, due - period, ttl, 100)
        entries.save(resource, entry, keep_until(entry, 3600))
        schedule.succeeded(resource, due)
    schedule.record_reads(pipe, resources, now, 3600)
    pipe.execute()
    return len(resources)


def reference(upstream: DemoUpstream, base_url: str, store: redis.Redis,
              validators: bool, count: int = 400, rounds: int = 5) -> float:
    """CPU seconds per request of a bare refresh loop: a conditional GET of an event
    with requests (304 when ``validators``) and one Redis SET, measured on its thread,
    plus what Redis spent; the median of ``rounds`` rounds."""
    event = next(iter(upstream.events))
    url = f"{base_url}/events/{event}/"
    session = requests.Session()
    headers = {"Authorization": f"Token {upstream.token}", "Accept": "application/json"}
    etag = session.get(url, headers=headers, timeout=10).headers.get("ETag")
    if validators and etag:
        headers["If-None-Match"] = etag
    spent: list[float] = []

    def loop() -> None:
        started = time.thread_time()
        for i in range(count):
            r = session.get(url, headers=headers, timeout=10)
            assert r.status_code == (304 if validators else 200), r.status_code
            store.set(f"reference:{i % 10}", r.content or b"-")
        spent.append(time.thread_time() - started)

    per_request = []
    for _ in range(rounds):
        before = redis_cpu(store)
        thread = threading.Thread(target=loop)
        thread.start()
        thread.join()
        per_request.append((spent[-1] + redis_cpu(store) - before) / count)
    store.delete(*(f"reference:{i}" for i in range(10)))
    return statistics.median(per_request)


class Fast:
    """A second upstream, ``fast``: a copy of Calendar42's event resource served by a
    demo of its own answering in ``--fast-latency`` seconds, added to the catalogue. Its
    freshness is sampled from Redis (no view reads it)."""

    def __init__(self, args: argparse.Namespace, work: Path, validators: bool) -> None:
        events = [f"fast-{i}" for i in range(args.fast)]
        self.upstream, self.server, base_url = demo_upstream(events)
        self.upstream.set_validators(validators)
        self.upstream.set_latency(args.fast_latency)
        self.resources = [f"fast:event:{e}" for e in events]
        catalogue = work / "catalogue.toml"
        catalogue.write_text((PROJECT_DIR / "catalogue.toml").read_text() + FAST_UPSTREAM)
        self.env = {CATALOGUE_ENV: str(catalogue), "FAST_BASE_URL": base_url,
                    "FAST_TOKEN": self.upstream.token}
        self.sampled = self.stale = 0

    def sample(self, store: redis.Redis, count: int = 100) -> None:
        """Count how many of ``count`` of its resources are past their freshness now."""
        pipe = store.pipeline(transaction=False)
        chosen = random.sample(self.resources, min(count, len(self.resources)))
        for resource in chosen:
            pipe.hget(KEYS.entry(resource), "fresh_until")
        now = time.time()
        for fresh_until in pipe.execute():
            self.sampled += 1
            self.stale += fresh_until is None or float(fresh_until) < now

    def close(self) -> None:
        self.upstream.release()
        self.server.shutdown()
        self.server.server_close()


FAST_UPSTREAM = """
[upstreams.fast]
title = "Fast"
base_url = "http://127.0.0.1:1/api/v2"
auth = { header = "Authorization", scheme = "Token" }

[upstreams.fast.resources.event]
path = "/events/{id}/"
keep = "data[0].{id: to_string(id || ''), title: title}"
"""


def worker_args(pool: str) -> tuple[list[str], dict[str, str]]:
    """The worker's command-line arguments and environment for ``--pool`` POOL[:N]:
    prefork and threads through WORKER_POOL (Celery takes a configured pool over
    ``--pool prefork``), any other pool (gevent) by ``--pool``."""
    if pool == "default":
        return [], {}
    name, _, concurrency = pool.partition(":")
    args = ["--concurrency", concurrency] if concurrency else []
    if name in ("prefork", "threads"):
        return args, {"WORKER_POOL": name}
    return ["--pool", name, *args], {}


def run(case: tuple[int, float, str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    count, latency, pool = case
    validators = args.answers == 304
    events = [f"cap-{i}" for i in range(count // 2)]
    upstream, server, base_url = demo_upstream(events)
    upstream.set_validators(validators)
    fast = Fast(args, work, validators) if args.fast else None
    port = free_port()
    procs = [start_redis(work / "redis", port, False)]
    store = redis.Redis(port=port)
    period = args.ttl * Settings().refresh.ratio
    per_request = reference(upstream, base_url, store, validators)
    upstream.set_latency(latency)
    extra = {"UPSTREAM_MAX_IN_FLIGHT": str(args.max_in_flight)} if args.max_in_flight else {}
    if fast is not None:
        extra.update(fast.env)
    env = isolated_env(work, f"redis://127.0.0.1:{port}/0", base_url, upstream.token,
                       LOG_LEVEL="WARNING", CACHE_TTL=str(args.ttl), C42_PAGE_SIZE="100",
                       API_MISS_WAIT_TIMEOUT="30", API_WORKERS="2", **extra)
    logs = (work / "processes.log").open("w")
    quiet: dict[str, Any] = {"stdout": logs, "stderr": subprocess.STDOUT}
    try:
        chosen, own = worker_args(pool)
        worker = celery({**env, **own}, "worker", *chosen, "--without-mingle",
                        "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        beat = celery(env, "beat", "--schedule", str(work / "beat-schedule"), **quiet)
        procs.append(beat)
        api_port = free_port()
        procs.append(start_api({**env, "API_PORT": str(api_port)}, **quiet))
        api = f"http://127.0.0.1:{api_port}"
        # Seeded once everything runs, so no refresh comes due while the worker starts.
        resources = seed(store, [f"c42:{kind}:{e}" for e in events
                                 for kind in ("event", "subscriptions")],
                         args.ttl, period, validators)
        if fast is not None:
            seed(store, fast.resources, args.ttl, period, validators)
        time.sleep(period / 5)
        lag = [k for k in cast(list[bytes], store.hkeys(KEYS.metrics()))
               if k.startswith(b"refresh_lag")]
        if lag:
            store.hdel(KEYS.metrics(), *lag)
        before = upstream.total_requests()
        fast_before = fast.upstream.total_requests() if fast is not None else 0
        upstream.peak_in_flight(reset=True)
        cpu_before = tree_cpu_seconds(worker.pid) + tree_cpu_seconds(beat.pid) + redis_cpu(store)
        session = requests.Session()
        answers, stale, errors = 0, 0, 0
        started = time.monotonic()
        interval = 1 / args.rate
        while (elapsed := time.monotonic() - started) < args.seconds:
            r = session.get(f"{api}{VIEW}/{events[answers % len(events)]}/", timeout=60)
            answers += 1
            errors += r.status_code != 200
            stale += "fwd=stale" in r.headers.get("Cache-Status", "")
            if fast is not None and answers % int(args.rate) == 0:
                fast.sample(store)  # about once a second
            time.sleep(max(0.0, answers * interval - (time.monotonic() - started)))
        made = upstream.total_requests() - before
        cpu = (tree_cpu_seconds(worker.pid) + tree_cpu_seconds(beat.pid) + redis_cpu(store)
               - cpu_before)
        p50, p99 = lag_quantiles(store)
        found = {} if fast is None else {
            "fast_resources": len(fast.resources),
            "fast_fetched_per_resource_per_period": round(
                (fast.upstream.total_requests() - fast_before) / len(fast.resources)
                / (elapsed / period), 3),
            "fast_stale_share": round(fast.stale / max(fast.sampled, 1), 4),
        }
        return {**found,
            "resources": resources,
            "latency_s": latency,
            "pool": pool,
            "answers_from_upstream": args.answers,
            "refreshes_needed_per_s": round(resources / period, 1),
            "upstream_requests_per_s": round(made / elapsed, 1),
            "fetched_per_resource_per_period": round(made / resources / (elapsed / period), 3),
            "peak_in_flight": upstream.peak_in_flight(),
            "answers": answers,
            "stale_share": round(stale / answers, 4),
            "errors": errors,
            "refresh_lag_p50_s": p50,
            "refresh_lag_p99_s": p99,
            "worker_rss_mb": rss_mb(worker.pid),
            "cpu_ms_per_refresh": round(1000 * cpu / max(made, 1), 3),
            "reference_cpu_ms": round(1000 * per_request, 3),
            "cpu_ratio": round(cpu / max(made, 1) / per_request, 2),
        }
    finally:
        upstream.release()
        stop(list(reversed(procs)))
        server.shutdown()
        server.server_close()
        if fast is not None:
            fast.close()
        logs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, nargs="+", default=[1000])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.5],
                        help="seconds the upstream takes to answer")
    parser.add_argument("--pool", nargs="+", default=["default"],
                        help="default (as make run starts it), or POOL[:CONCURRENCY]")
    parser.add_argument("--ttl", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100, help="client reads a second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--answers", type=int, choices=[304, 200], default=304)
    parser.add_argument("--max-in-flight", type=int, default=0,
                        help="UPSTREAM_MAX_IN_FLIGHT (0: the default)")
    parser.add_argument("--fast", type=int, default=0,
                        help="resources of a second, fast upstream besides (0: none)")
    parser.add_argument("--fast-latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    cases = list(itertools.product(args.resources, args.latency, args.pool))
    each("capacity", cases, lambda case, work: run(case, args, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
