"""``python -m benchmarks.store``: the cache when its Redis misbehaves.

Two runs against a system started here (Redis, the demo upstream, a worker, the API
under ``python -m api``):

- ``down``: clients read a mix of views the API served before and views it never
  served; Redis is stopped for ``--down-seconds`` (default 30) and started again on its
  data. Reported: what the clients got during the outage and how fast (the views served
  before should stay 200, the others 503 ``store_unavailable`` within 0.5 s), and how
  long after Redis returned every answer was normal again.
- ``memory``: Redis capped at ``--cap-mb`` (default 20) as ``make run`` caps it
  (``volatile-lru``), and ``--fill-mb`` (default 60) of distinct views requested. Reported:
  failed requests (should be 0), evictions, and tasks, schedule entries and locks planted
  before the run, counted after it (none should be lost).
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
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

from demo.server import API, DemoUpstream, make_demo_server
from launcher.services import celery, free_port, memory_cap
from shared.config.settings import load_settings
from shared.queue import REFRESH_TASK, celery_app
from shared.store.flights import Flights
from shared.store.keys import Keys
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker
from tests.helpers import lock_holder

VIEW = "/events-with-subscriptions"
KEYS = Keys("cachedproxy")


@dataclass
class System:
    api: str
    redis_port: int
    redis_dir: Path
    redis_options: tuple[str, ...]
    procs: list[subprocess.Popen]
    upstream: DemoUpstream
    env: dict[str, str]

    def store(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, decode_responses=True)

    def stop_redis(self) -> None:
        stop([self.procs.pop(0)])

    def start_redis(self) -> None:
        self.procs.insert(0, start_redis(self.redis_dir, self.redis_port, True,
                                         *self.redis_options))


@contextmanager
def system(work: Path, redis_options: tuple[str, ...] = (), **env_extra: str
           ) -> Iterator[System]:
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    procs = [start_redis(work / "redis", port, True, *redis_options)]
    env = isolated_env(work, f"redis://127.0.0.1:{port}/0",
                       f"http://127.0.0.1:{server.server_address[1]}{API}", upstream.token,
                       LOG_LEVEL="WARNING", **env_extra)
    logs = (work / "processes.log").open("w")
    quiet = {"stdout": logs, "stderr": subprocess.STDOUT}
    try:
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        api_port = free_port()
        procs.append(start_api({**env, "API_PORT": str(api_port)}, **quiet))
        yield System(f"http://127.0.0.1:{api_port}", port, work / "redis", redis_options,
                     procs, upstream, env)
    finally:
        stop(list(reversed(procs)))
        server.shutdown()
        server.server_close()
        logs.close()


@dataclass(frozen=True)
class Answer:
    at: float  # seconds since the load began
    event: str
    status: int
    ms: float
    local: bool  # served from the API process's own copy


def load(api: str, events: list[str], stop_at: threading.Event, started: float,
         threads: int = 8) -> list[Answer]:
    answers: list[Answer] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        session, i = requests.Session(), n
        while not stop_at.is_set():
            event = events[i % len(events)]
            i += threads
            begin = time.perf_counter()
            r = session.get(f"{api}{VIEW}/{event}/", timeout=30)
            answer = Answer(time.monotonic() - started, event, r.status_code,
                            (time.perf_counter() - begin) * 1000,
                            "store-unavailable" in r.headers.get("Cache-Status", ""))
            with lock:
                answers.append(answer)

    with ThreadPoolExecutor(threads) as pool:
        for n in range(threads):
            pool.submit(client, n)
    return answers


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)]


def run_down(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with system(work, ("--appendfsync", "always")) as sys_:
        served = [f"served-{i}" for i in range(10)]
        never = [f"never-{i}" for i in range(10)]
        for event in served + never:
            sys_.upstream.put_event(event, f"Event {event}", ["Ada", "Grace"])
        for _ in range(10):  # every API process serves every view once at least
            for event in served:
                assert requests.get(f"{sys_.api}{VIEW}/{event}/", timeout=30).status_code == 200
        stop_at, started = threading.Event(), time.monotonic()
        mix = list(served)  # the views never served join once Redis is down
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(load, sys_.api, mix, stop_at, started)
            time.sleep(2)  # steady load first
            down_at = time.monotonic() - started
            sys_.stop_redis()
            mix.extend(never)
            time.sleep(args.down_seconds)
            up_at = time.monotonic() - started
            sys_.start_redis()
            time.sleep(10)
            stop_at.set()
            answers = running.result()
    during = [a for a in answers if down_at + 0.5 <= a.at <= up_at]
    after = [a for a in answers if a.at > up_at]
    abnormal_after = [a for a in after if a.status != 200 or a.local]
    seen = {a.event for a in during}
    return {
        "down_seconds": args.down_seconds,
        "answers_during_outage": len(during),
        "served_views_200": sum(a.status == 200 for a in during if a.event in served),
        "served_views_total": sum(a.event in served for a in during),
        "never_served_503": sum(a.status == 503 for a in during if a.event in never),
        "never_served_total": sum(a.event in never for a in during),
        "other_statuses": sorted({a.status for a in during} - {200, 503}),
        "events_seen": len(seen),
        "p50_ms": round(pct([a.ms for a in during], 50), 2),
        "p99_ms": round(pct([a.ms for a in during], 99), 2),
        "max_ms": round(max((a.ms for a in during), default=0.0), 2),
        "p99_503_ms": round(pct([a.ms for a in during if a.status == 503], 99), 2),
        "normal_after_s": round(max((a.at for a in abnormal_after), default=up_at) - up_at, 2),
        "abnormal_after": {f"{status}{' local' if local else ''}": sum(
            1 for a in abnormal_after if (a.status, a.local) == (status, local))
            for status, local in {(a.status, a.local) for a in abnormal_after}},
    }


def run_memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cap = memory_cap(f"{args.cap_mb}mb")
    with system(work, cap, C42_PAGE_SIZE="100") as sys_:
        store = sys_.store()
        # Planted before the run: tasks in a queue no worker takes, schedule entries,
        # held locks.
        queue = celery_app(load_settings(sys_.env))
        with queue.connection_for_write() as conn:
            for i in range(200):
                queue.send_task(REFRESH_TASK, (f"c42:event:planted-{i}",), queue="planted",
                                connection=conn)
        flights = Flights(store, KEYS)
        held = [flights.join(f"c42:event:held-{i}", hold_ms=3_600_000) for i in range(50)]
        far = time.time() + 86_400
        store.zadd(KEYS.schedule(), {f"c42:event:planted-{i}": far * 1000 for i in range(500)})
        # Each view: an event and one page of subscriptions, ~100 KB each.
        size = 100_000
        views = args.fill_mb * 1_000_000 // (2 * size)
        events = [f"big-{i}" for i in range(views)]
        for event in events:
            sys_.upstream.put_event(event, "t" * size, [f"{n:03d}" + "n" * (size // 100 - 3)
                                                       for n in range(100)])
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda e: requests.get(
                f"{sys_.api}{VIEW}/{e}/", timeout=60).status_code, events))
        seconds = time.monotonic() - started
        memory, stats = store.info("memory"), store.info("stats")
        live: list[str] = list(store.zrange(KEYS.schedule(), 0, -1))  # type: ignore[arg-type]
        kept = list(store.scan_iter(KEYS.pattern("entry"), count=1000))
        sizes = [store.memory_usage(key, samples=0) or 0 for key in kept]
        return {
            "cap_mb": args.cap_mb,
            "requested_mb": round(views * 2 * size / 1e6, 1),
            "views": views,
            "seconds": round(seconds, 1),
            "failed_requests": sum(s != 200 for s in statuses),
            "statuses": dict(Counter(statuses)),
            "evicted_keys": stats["evicted_keys"],
            "entries_kept": len(kept),
            "mean_entry_kb": round(sum(sizes) / max(len(sizes), 1) / 1000, 1),
            "used_memory_mb": round(memory["used_memory"] / 1e6, 1),
            "planted_tasks_left": store.llen(KEYS.queue("planted")),
            "planted_schedule_left": sum(m.startswith("c42:event:planted-") for m in live),
            "views_scheduled": sum(m.startswith("c42:event:big-") for m in live),
            "held_locks_left": sum(lock_holder(flights, f.resource) == f.token for f in held),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__)
    # No choices= with a list default: argparse checks the default list as one choice.
    parser.add_argument("runs", nargs="*", help="down, memory or both (default: both)")
    parser.add_argument("--down-seconds", type=float, default=30)
    parser.add_argument("--cap-mb", type=int, default=20)
    parser.add_argument("--fill-mb", type=int, default=60)
    args = parser.parse_args(argv)
    runs = args.runs or ["down", "memory"]
    if set(runs) - {"down", "memory"}:
        parser.error(f"unknown runs: {', '.join(sorted(set(runs) - {'down', 'memory'}))}")
    results: dict[str, dict[str, Any]] = {}
    for run in runs:
        with tempfile.TemporaryDirectory(prefix=f"cachedproxy-{run}-") as tmp:
            results[run] = (run_down if run == "down" else run_memory)(args, Path(tmp))
        print(json.dumps({run: results[run]}), flush=True)
    down, memory = results.get("down"), results.get("memory")
    ok = True
    if down:
        ok &= (down["served_views_200"] == down["served_views_total"]
               and down["never_served_503"] == down["never_served_total"]
               and down["p99_503_ms"] <= 500 and down["normal_after_s"] <= 5)
    if memory:
        ok &= (memory["failed_requests"] == 0 and memory["evicted_keys"] > 0
               and memory["planted_tasks_left"] == 200 and memory["planted_schedule_left"] == 500
               and memory["held_locks_left"] == 50)
    print(json.dumps({"summary": "as promised" if ok else "NOT as promised"}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
