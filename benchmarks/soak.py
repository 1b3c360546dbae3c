"""``python -m benchmarks.soak`` (``make soak``): the whole system under steady mixed load.

Starts ``make run``'s launcher (its own Redis, demo upstream, worker, beat, Flower, API) on
free ports with short TTLs, then for ``--seconds`` (default 300) sends a steady mix:
hits on warm views, misses on a large pool of other events (entries expire between
visits, so later visits miss again), unknown events (404), while refreshes run ahead and
the upstream fails for ``--fault-seconds`` of every ``--fault-every`` (only warm views
are read then: they must be served stale). Reports errors (any answer other than the
expected one), each process's memory, Redis's memory and key count after warm-up and at
the end, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from launcher.services import free_port, wait_for
from shared.config.settings import PROJECT_DIR, options
from tests.harness import process_tree, stop

VIEW = "/events-with-subscriptions"
WARM = ["launch-party", "team-standup", "board-meeting", "quiet-evening"]
SERVICES = {  # a marker in the command line of each process the launcher started
    "redis-server": "redis", "-m demo": "demo", " worker --hostname": "worker",
    " beat --schedule": "beat", " flower": "flower", "-m api": "api", "granian ": "api",
}


def rss_by_service(launcher_pid: int) -> dict[str, float]:
    """Resident memory (MB) of each service: the process the launcher started and all
    its children (pool processes, server workers), whatever titles they give themselves."""
    totals = {"launcher": _rss(launcher_pid)}
    for pid, cmd in process_tree(launcher_pid).items():
        if _ppid(pid) != launcher_pid:
            continue
        service = next((s for marker, s in SERVICES.items() if marker in cmd), cmd[:40])
        pids = [pid, *process_tree(pid)]
        totals[service] = totals.get(service, 0.0) + sum(_rss(p) for p in pids)
    return {k: round(v, 1) for k, v in sorted(totals.items())}


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _rss(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0  # gone meanwhile
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("VmRSS:")), 0) / 1024


def redis_figures(client: redis.Redis) -> dict[str, float]:
    memory = client.info("memory")
    return {"used_memory_mb": round(memory["used_memory"] / 2**20, 2),
            "keys": client.dbsize()}


class Load:
    """A steady request mix; counts answers by kind and status."""

    def __init__(self, api: str, demo: str, cold: list[str], rate: float, seed: int) -> None:
        self.api, self.demo, self.cold, self.rate = api, demo, cold, rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.answers: Counter[tuple[str, int]] = Counter()
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.faulty = threading.Event()
        self.asking = 0  # requests in flight that may need upstream (not hits)
        self.local = threading.local()

    def one(self) -> None:
        with self.lock:
            roll = self.rng.random()
            cold = self.rng.choice(self.cold)
            warm = self.rng.choice(WARM)
            faulty = self.faulty.is_set()
            if faulty or roll < 0.75:
                kind, path, expect = "hit", f"{VIEW}/{warm}/", {200}
            elif roll < 0.97:
                kind, path, expect = "cold", f"{VIEW}/{cold}/", {200}
            else:
                kind, path, expect = "unknown", f"{VIEW}/no-such-{cold}/", {404}
            if kind != "hit":
                self.asking += 1
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        started = time.perf_counter()
        try:
            status = session.get(self.api + path, timeout=30).status_code
        except requests.RequestException as exc:
            status = 0
            detail = type(exc).__name__
        else:
            detail = ""
        seconds = time.perf_counter() - started
        with self.lock:
            if kind != "hit":
                self.asking -= 1
            self.answers[(kind, status)] += 1
            self.latencies.append(seconds)
            if status not in expect and not (faulty and kind == "hit" and status == 200):
                self.errors.append(f"{kind} {path} -> {status} {detail}".strip())

    def run(self, seconds: float, clients: int = 8) -> None:
        interval = clients / self.rate
        deadline = time.monotonic() + seconds

        def client(offset: float) -> None:
            next_at = time.monotonic() + offset
            while next_at < deadline:
                time.sleep(max(next_at - time.monotonic(), 0))
                self.one()
                next_at += interval

        with ThreadPoolExecutor(clients) as pool:
            for i in range(clients):
                pool.submit(client, i * interval / clients)

    def faults(self, seconds: float, every: float, length: float, stop: threading.Event
               ) -> None:
        """Upstream fails for ``length`` of every ``every`` seconds."""
        deadline = time.monotonic() + seconds
        while not stop.wait(every - length) and time.monotonic() + length < deadline:
            with self.lock:
                self.faulty.set()
            # Requests in flight that may need upstream finish before it fails.
            drained = time.monotonic() + 30
            while self.asking and time.monotonic() < drained:
                time.sleep(0.05)
            requests.put(f"{self.demo}/fault", json={"mode": "error", "status": 503},
                         timeout=5)
            stop.wait(length)
            requests.delete(f"{self.demo}/fault", timeout=5)
            time.sleep(0.5)
            self.faulty.clear()


def launch(work: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, Path, dict]:
    """``python -m launcher`` in ``work``; returns it, its output file and what it
    started (service -> its "started" record)."""
    config = work / "config.ini"
    config.write_text("")
    ours = {opt.env for opt in options()}
    env = {**{k: v for k, v in os.environ.items() if k not in ours},
           "CACHEDPROXY_CONFIG": str(config), "KEY_PREFIX": "cpsoak",
           "FLOWER_BASIC_AUTH": "soak:" + os.urandom(8).hex(), **env_extra}
    output = work / "launcher.log"
    with output.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher", "--run-dir", str(work / "run")],
                                env=env, cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def records() -> list[dict]:
        return [json.loads(line) for line in output.read_text().splitlines() if line.strip()]

    try:
        wait_for(lambda: any(r.get("event", "").startswith("running") for r in records()),
                 90, "launcher", proc)
    except BaseException:
        stop([proc], timeout=15)
        raise
    started = {r["service"]: r for r in records() if r.get("event") == "started"}
    return proc, output, started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--rate", type=float, default=50, help="requests per second")
    parser.add_argument("--cold-pool", type=int, default=1500)
    parser.add_argument("--fault-every", type=float, default=60)
    parser.add_argument("--fault-seconds", type=float, default=10)
    args = parser.parse_args(argv)
    api_port = free_port()
    with tempfile.TemporaryDirectory(prefix="cachedproxy-soak-") as tmp:
        work = Path(tmp)
        proc, output, started = launch(work, {
            "API_PORT": str(api_port), "FLOWER_PORT": str(free_port()),
            "CACHE_TTL": "10", "CACHE_STALE_IF_ERROR": "60", "REFRESH_IDLE_TIMEOUT": "10",
        })
        try:
            demo = started["demo upstream"]["url"].removesuffix("/api/v2") + "/_demo"
            api = f"http://127.0.0.1:{api_port}"
            cold = [f"soak-{i}" for i in range(args.cold_pool)]
            for event in cold:
                requests.put(f"{demo}/events/{event}", json={"title": event, "names": ["Ada"]},
                             timeout=5)
            store = redis.Redis.from_url(started["redis"]["url"])
            load = Load(api, demo, cold, args.rate, seed=1)
            stopping = threading.Event()
            faults = threading.Thread(target=load.faults, args=(
                args.seconds, args.fault_every, args.fault_seconds, stopping))
            faults.start()
            began = time.monotonic()
            load.run(min(args.warmup, args.seconds))
            after_warmup = {"processes_mb": rss_by_service(proc.pid), **redis_figures(store)}
            load.run(max(args.seconds - (time.monotonic() - began), 0))
            stopping.set()
            faults.join()
            at_end = {"processes_mb": rss_by_service(proc.pid), **redis_figures(store)}
            alive = proc.poll() is None
        finally:
            stop([proc], timeout=15)
        restarts = sum('"process exited' in line for line in output.read_text().splitlines())
    latencies = sorted(load.latencies)
    before, after = after_warmup["processes_mb"], at_end["processes_mb"]
    assert isinstance(before, dict) and isinstance(after, dict)
    growth = {k: round(after.get(k, 0) - v, 1) for k, v in before.items()}
    report = {
        "seconds": args.seconds, "rate": args.rate, "requests": len(latencies),
        "errors": len(load.errors), "first_errors": load.errors[:10],
        "answers": {f"{k} {s}": n for (k, s), n in sorted(load.answers.items())},
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "after_warmup": after_warmup, "at_end": at_end, "memory_growth_mb": growth,
        "launcher_alive": alive, "restarts": restarts,
    }
    print(json.dumps(report, indent=2))
    return 0 if not load.errors and alive and not restarts else 1


if __name__ == "__main__":
    sys.exit(main())
