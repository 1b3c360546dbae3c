"""``python -m benchmarks.refresh``: what refresh-ahead costs upstream and gives clients.

Runs the system (private Redis, worker, beat, API) with CACHE_TTL=4 against a separately
started C42-compatible server (the demo, as its own process), and a client reading one
event every 0.5 s. Twice: with the upstream sending validators (ETag, Last-Modified, so
refreshes can be 304s), and as reference with the upstream sending none. Reports client
latencies, how long an upstream change takes to reach clients, and upstream requests and
body bytes per resource per hour, the validator run as a ratio of the reference run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from launcher.services import celery, free_port, port_open, spawn, wait_for
from shared.config.settings import PROJECT_DIR
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

EVENT = "launch-party"


def run(args: argparse.Namespace, validators: bool, work: Path) -> dict[str, Any]:
    token = secrets.token_urlsafe(12)
    procs: list[subprocess.Popen] = []
    logs = (work / f"validators-{validators}.log").open("w")
    quiet: dict[str, Any] = {"stdout": logs, "stderr": subprocess.STDOUT}
    try:
        demo_port, redis_port, api_port = free_port(), free_port(), free_port()
        procs.append(spawn([sys.executable, "-m", "demo", "--port", str(demo_port),
                            "--token", token], dict(os.environ), cwd=PROJECT_DIR, **quiet))
        wait_for(lambda: port_open("127.0.0.1", demo_port), 10, "demo", procs[-1])
        control = f"http://127.0.0.1:{demo_port}/_demo"
        requests.put(f"{control}/validators", json={"enabled": validators}, timeout=5)
        procs.append(start_redis(work / f"redis-{validators}", redis_port, appendonly=False))
        env = isolated_env(
            work, f"redis://127.0.0.1:{redis_port}/0", f"http://127.0.0.1:{demo_port}/api/v2",
            token, CACHE_TTL=str(args.ttl), API_PORT=str(api_port), LOG_LEVEL="WARNING",
        )
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        procs.append(celery(env, "beat", "--schedule", str(work / f"beat-{validators}"),
                            **quiet))
        procs.append(start_api(env, **quiet))
        url = f"http://127.0.0.1:{api_port}/events-with-subscriptions/{EVENT}/"

        session = requests.Session()
        latencies, bad, change_seen = [], 0, None
        title = "Product launch party"
        change_at = args.seconds / 2
        start = time.monotonic()
        for i in range(int(args.seconds / args.every)):
            if change_seen is None and title == "Product launch party" and \
                    time.monotonic() - start >= change_at:
                title = "Product launch party (moved)"
                requests.put(f"{control}/events/{EVENT}", json={"title": title}, timeout=5)
                changed = time.monotonic()
            sent = time.perf_counter()
            r = session.get(url, timeout=30)
            latencies.append((time.perf_counter() - sent) * 1000)
            body = r.json() if r.status_code == 200 else {}
            if r.status_code != 200 or len(body.get("names", [])) != 23:
                bad += 1
            if change_seen is None and body.get("title") == "Product launch party (moved)":
                change_seen = time.monotonic() - changed
            time.sleep(max(start + (i + 1) * args.every - time.monotonic(), 0))
        counters = requests.get(f"{control}/counters", timeout=5).json()
    finally:
        stop(list(reversed(procs)))
    hours = args.seconds / 3600
    per_hour = {
        kind: {
            "requests": round(sum(counters["requests"][kind][EVENT].values()) / hours),
            "by_status": counters["requests"][kind][EVENT],
            "body_bytes": round(counters["bytes"][kind][EVENT] / hours),
        }
        for kind in ("event", "subscriptions")
    }
    rest = latencies[1:]
    return {
        "validators": validators,
        "responses": len(latencies), "bad_responses": bad,
        "first_ms": round(latencies[0], 1),
        "after_first_p50_ms": round(statistics.median(rest), 1),
        "after_first_max_ms": round(max(rest), 1),
        "change_visible_after_s": None if change_seen is None else round(change_seen, 2),
        "upstream_per_hour": per_hour,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refresh", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--ttl", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cachedproxy-refresh-"))
    with_validators = run(args, True, work)
    without = run(args, False, work)

    def total(result: dict[str, Any], field: str) -> int:
        return sum(kind[field] for kind in result["upstream_per_hour"].values())

    report = {
        "with_validators": with_validators,
        "reference_without_validators": without,
        "upstream_bytes_ratio": round(total(with_validators, "body_bytes")
                                      / total(without, "body_bytes"), 4),
        "upstream_requests_ratio": round(total(with_validators, "requests")
                                         / total(without, "requests"), 3),
    }
    print(json.dumps(report, indent=2))
    ok = (with_validators["bad_responses"] == 0
          and with_validators["after_first_max_ms"] <= 50
          and (with_validators["change_visible_after_s"] or 99) <= 5)
    print("refresh: every response good, none slow, change within 5 s" if ok
          else "refresh: CHECK FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
