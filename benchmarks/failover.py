"""``python -m benchmarks.failover``: the Redis master killed under load, with Sentinel.

A master, a replica and three sentinels (``down-after-milliseconds`` = ``--down-after-ms``,
quorum 2), the demo upstream, two workers, two beats and two API groups (``python -m api``,
two processes each), all given only REDIS_SENTINELS. The TTL is long, so every upstream
request after warming is one the failover cost.

- ``steady``: ``--clients`` clients read ``--views`` warm views from both API groups;
  after 3 s the master is SIGKILLed. Reported: answers by status, the window from the
  kill to the last non-200, against the sentinels' own failover time (kill to promotion,
  measured in the same run), and extra upstream requests per resource. The same for one
  more client on a third API group started just before the kill: it has served nothing
  yet, so it has no copies to answer from while no master is known.
- ``cold``: ``--views`` new events requested three times each at once (upstream takes
  0.5 s); the master is killed when the first fetch reaches upstream. Reported: answers
  by status, the longest answer (bounded by the miss wait), the time until every view
  answers 200, and upstream requests per resource (1 is none extra).
- ``reads``: the Redis commands a warm hit costs on the master (INFO commandstats over
  ``--hits`` requests): what serving hits from replicas could take off it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from benchmarks import demo_upstream
from demo.server import DemoUpstream
from launcher.services import celery, free_port
from tests.harness import SentinelStand, isolated_env, start_api, stop, wait_for_worker

VIEW = "/events-with-subscriptions"
MISS_WAIT = 10.0


@dataclass
class Cluster:
    stand: SentinelStand
    upstream: DemoUpstream
    env: dict[str, str]
    apis: list[str]
    procs: list[subprocess.Popen]

    def running(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)


    def add_api(self) -> str:
        port = free_port()
        self.procs.append(start_api({**self.env, "API_PORT": str(port)},
                                    stderr=subprocess.DEVNULL))
        return f"http://127.0.0.1:{port}"


@contextmanager
def cluster(work: Path, events: list[str], down_after_ms: int) -> Iterator[Cluster]:
    stand = SentinelStand(work / "redis", down_after_ms).start()
    upstream, server, base_url = demo_upstream(events)
    env = isolated_env(work, "redis://127.0.0.1:1/0", base_url, upstream.token,
                       REDIS_SENTINELS=stand.addresses, LOG_LEVEL="WARNING",
                       CACHE_TTL="3600", API_MISS_WAIT_TIMEOUT=str(MISS_WAIT))
    procs: list[subprocess.Popen] = []
    c = Cluster(stand, upstream, env, [], procs)
    try:
        for host in ("a", "b"):
            worker = celery(env, "worker", "--concurrency", "4", "--without-mingle",
                            "--without-gossip", "--hostname", f"bench-{host}@%h",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs += [worker, celery(env, "beat", "--schedule", str(work / f"beat-{host}"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
            c.apis.append(c.add_api())
        wait_for_worker(env, procs[0])
        yield c
    finally:
        stop(list(reversed(procs)))
        stand.stop()
        server.shutdown()


def get(url: str) -> int:
    try:
        return requests.get(url, timeout=MISS_WAIT + 10).status_code
    except requests.RequestException:
        return 0  # no answer at all


def steady(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = [f"steady-{i}" for i in range(args.views)]
    with cluster(work, events, args.down_after_ms) as c:
        urls = [f"{api}{VIEW}/{e}/" for e in events for api in c.apis]
        assert all(get(u) == 200 for u in urls)
        before = {e: c.upstream.count("event", e) for e in events}
        new_api = c.add_api()  # has served nothing
        new_urls = [f"{new_api}{VIEW}/{e}/" for e in events]
        seen: list[tuple[float, int]] = []
        seen_new: list[tuple[float, int]] = []
        done = threading.Event()

        def read(offset: int, urls: list[str], seen: list[tuple[float, int]]) -> None:
            i = offset
            while not done.is_set():
                seen.append((time.monotonic(), get(urls[i % len(urls)])))
                i += 1

        with ThreadPoolExecutor(args.clients + 1) as pool:
            for n in range(args.clients):
                pool.submit(read, n, urls, seen)
            time.sleep(3)
            pool.submit(read, 0, new_urls, seen_new)
            killed = time.monotonic()
            old = c.stand.kill_master()
            c.stand.wait_failover(old)
            promoted = time.monotonic()
            time.sleep(10)
            done.set()
        failed = [t for t, status in seen if status != 200]
        failed_new = [t for t, status in seen_new if status != 200]
        extra = [c.upstream.count("event", e) - before[e] for e in events]
        return {
            "run": "steady", "clients": args.clients, "views": len(urls),
            "down_after_ms": args.down_after_ms, "answers": len(seen),
            "statuses": dict(Counter(status for _, status in seen)),
            "failover_s": round(promoted - killed, 2),
            "non_200_window_s": round(max(failed) - killed, 2) if failed else 0.0,
            "window_per_failover": round((max(failed) - killed) / (promoted - killed), 2)
            if failed else 0.0,
            "new_api_statuses": dict(Counter(status for _, status in seen_new)),
            "new_api_non_200_window_s": round(max(failed_new) - killed, 2) if failed_new
            else 0.0,
            "extra_upstream_per_resource_max": max(extra),
            "processes_restarted": 0 if c.running() else "some exited",
        }


def cold(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = [f"cold-{i}" for i in range(args.views)]
    with cluster(work, events, args.down_after_ms) as c:
        c.upstream.set_latency(0.5)
        asks = [f"{c.apis[n % 2]}{VIEW}/{e}/" for n in range(3) for e in events]

        def timed(url: str) -> tuple[int, float]:
            began = time.monotonic()
            return get(url), time.monotonic() - began

        with ThreadPoolExecutor(len(asks)) as pool:
            pending = [pool.submit(timed, url) for url in asks]
            c.upstream.wait_for_request("event", events[0], timeout=30)
            killed = time.monotonic()
            old = c.stand.kill_master()
            answered = [f.result() for f in pending]
        c.stand.wait_failover(old)
        promoted = time.monotonic()
        c.upstream.set_latency(0)
        for event in events:  # until every view answers 200
            while get(f"{c.apis[0]}{VIEW}/{event}/") != 200:
                time.sleep(0.1)
        recovered = time.monotonic()
        fetched = [c.upstream.count("event", e) for e in events]
        return {
            "run": "cold", "views": len(events), "requests": len(asks),
            "down_after_ms": args.down_after_ms,
            "statuses": dict(Counter(status for status, _ in answered)),
            "longest_answer_s": round(max(took for _, took in answered), 2),
            "miss_wait_s": MISS_WAIT,
            "failover_s": round(promoted - killed, 2),
            "all_200_after_kill_s": round(recovered - killed, 2),
            "upstream_per_resource_max": max(fetched),
            "resources_fetched_twice": sum(1 for n in fetched if n > 1),
            "processes_restarted": 0 if c.running() else "some exited",
        }


def reads(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = [f"hot-{i}" for i in range(args.views)]
    with cluster(work, events, args.down_after_ms) as c:
        urls = [f"{api}{VIEW}/{e}/" for e in events for api in c.apis]
        assert all(get(u) == 200 for u in urls)
        master = redis.Redis(port=c.stand.master())

        def commands() -> int:
            stats = master.info("commandstats")
            return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")

        before, began = commands(), time.monotonic()
        with requests.Session() as session:
            for n in range(args.hits):
                assert session.get(urls[n % len(urls)], timeout=10).status_code == 200
        busy, took = commands() - before, time.monotonic() - began
        before = commands()  # reference: the same time without hits (ticks, heartbeats)
        time.sleep(took)
        idle = commands() - before
        return {"run": "reads", "hits": args.hits, "seconds": round(took, 1),
                "master_commands_with_hits": busy, "master_commands_idle": idle,
                "master_commands_per_hit": round((busy - idle) / args.hits, 3)}


RUNS = {"steady": steady, "cold": cold, "reads": reads}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", default=list(RUNS),
                        help=f"which of {', '.join(RUNS)} (default: all)")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--down-after-ms", type=int, default=1000)
    args = parser.parse_args()
    unknown = set(args.runs) - set(RUNS)
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    for run in args.runs:
        with tempfile.TemporaryDirectory(prefix=f"cachedproxy-failover-{run}-") as tmp:
            print(json.dumps(RUNS[run](args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
