"""``python -m benchmarks.capacity``: how many refreshes a worker delivers, by concurrency.

For each ``--concurrency`` (default 2 and 8 prefork processes) it starts Redis, the demo
upstream (answering after ``--latency`` seconds, as a slow API does), one worker, beat
and the API, makes ``--events`` views live (two resources each) with ``CACHE_TTL``
``--ttl``, then reads them round robin at ``--rate`` requests per second for
``--seconds``. The refreshes needed are resources / (TTL × refresh ratio) per second.
Reported per concurrency: upstream requests per second, the share of answers that were
stale (served past their freshness while a refresh ran, or after it failed), refresh
lag p50/p99 (``cachedproxy_refresh_lag_seconds``) and the worker's memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import demo_upstream, each
from launcher.services import celery, free_port
from shared.config.settings import Settings
from tests.harness import isolated_env, process_tree, start_api, start_redis, stop, wait_for_worker

VIEW = "/events-with-subscriptions"


def lag_quantiles(api: str) -> tuple[float, float]:
    """p50 and p99 of the refresh lag histogram, as bucket upper bounds."""
    text = requests.get(f"{api}/metrics", timeout=10).text
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name == "cachedproxy_refresh_lag_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples
                       if s.name.endswith("_bucket")]
    total = buckets[-1][1] if buckets else 0
    found = []
    for q in (0.5, 0.99):
        found.append(next((le for le, n in buckets if total and n >= q * total), float("nan")))
    return found[0], found[1]


def rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *process_tree(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def run(concurrency: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = [f"cap-{i}" for i in range(args.events)]
    upstream, server, base_url = demo_upstream(events)
    port = free_port()
    procs = [start_redis(work / "redis", port, False)]
    env = isolated_env(work, f"redis://127.0.0.1:{port}/0", base_url, upstream.token,
                       LOG_LEVEL="WARNING", CACHE_TTL=str(args.ttl), REFRESH_TICK_INTERVAL="0.5",
                       API_MISS_WAIT_TIMEOUT="30", API_WORKERS="2")
    logs = (work / "processes.log").open("w")
    quiet = {"stdout": logs, "stderr": subprocess.STDOUT}
    try:
        worker = celery(env, "worker", "--concurrency", str(concurrency), "--without-mingle",
                        "--without-gossip", **quiet)
        procs.append(worker)
        procs.append(celery(env, "beat", "--schedule", str(work / "beat-schedule"), **quiet))
        wait_for_worker(env, worker)
        api_port = free_port()
        procs.append(start_api({**env, "API_PORT": str(api_port)}, **quiet))
        api = f"http://127.0.0.1:{api_port}"
        session = requests.Session()
        for event in events:  # every view live before the measured run
            assert session.get(f"{api}{VIEW}/{event}/", timeout=60).status_code == 200
        upstream.set_latency(args.latency)
        time.sleep(args.ttl)  # refreshes under the latency before counting
        before = sum(n for kind in upstream.counters().values() for by_id in kind.values()
                     for n in by_id.values())
        answers, stale, errors = 0, 0, 0
        started = time.monotonic()
        interval = 1 / args.rate
        while (elapsed := time.monotonic() - started) < args.seconds:
            r = session.get(f"{api}{VIEW}/{events[answers % len(events)]}/", timeout=60)
            answers += 1
            errors += r.status_code != 200
            stale += "fwd=stale" in r.headers.get("Cache-Status", "")
            time.sleep(max(0.0, answers * interval - (time.monotonic() - started)))
        after = sum(n for kind in upstream.counters().values() for by_id in kind.values()
                    for n in by_id.values())
        p50, p99 = lag_quantiles(api)
        return {
            "concurrency": concurrency,
            "refreshes_needed_per_s": round(
                2 * args.events / (args.ttl * Settings().refresh.ratio), 1),
            "upstream_requests_per_s": round((after - before) / elapsed, 1),
            "answers": answers,
            "stale_share": round(stale / answers, 3),
            "errors": errors,
            "refresh_lag_p50_s": p50,
            "refresh_lag_p99_s": p99,
            "worker_rss_mb": rss_mb(worker.pid),
        }
    finally:
        upstream.release()
        stop(list(reversed(procs)))
        server.shutdown()
        server.server_close()
        logs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.1, help="upstream seconds a request")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    results = each("capacity", args.concurrency, lambda value, work: run(value, args, work))
    base = results[0]
    for result in results[1:]:
        print(json.dumps({
            "concurrency": result["concurrency"], "vs": base["concurrency"],
            "upstream_requests_ratio": round(
                result["upstream_requests_per_s"] / max(base["upstream_requests_per_s"], 0.1), 2),
            "stale_share": [base["stale_share"], result["stale_share"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
