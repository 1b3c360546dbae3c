"""``python -m benchmarks.github``: GitHub organisation views against a GitHub-compatible
server (the demo, as its own process) with 150 repositories over 5 pages of 30.

Runs the system (private Redis, worker, beat, API) with ``GITHUB_PAGE_SIZE=30`` and a
short TTL, warms up, then reads the four ``/view/top/5/<field>`` views every 0.25 s;
halfway through a repository on page 4 gets the most stars upstream. Reports whether
every answer was right (against the ranking computed here from the same data), client
latency after warm-up, the upstream requests by status (304s are free at GitHub) and
the request rate against the configured budget.
"""

from __future__ import annotations

import argparse
import copy
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

from demo.github import sample_orgs
from launcher.services import celery, free_port, port_open, spawn, wait_for
from shared.config.settings import PROJECT_DIR
from shared.policy.budget import HOUR, capacity
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

FIELDS = {"stars": "stargazers_count", "forks": "forks_count",
          "open_issues": "open_issues_count", "last_updated": "updated_at"}


def count(counters: dict[str, Any]) -> int:
    """Upstream requests the demo counted for the organisation, every kind and status."""
    return sum(n for kind in ("org", "repos", "members")
               for n in counters.get("github", {}).get(f"github:{kind}", {})
               .get("Netflix", {}).values())


def ranking(repos: list[Any], field: str, n: int) -> list[list[Any]]:
    key = FIELDS[field]
    ordered = sorted(sorted(repos, key=lambda r: r.full_name),
                     key=lambda r: getattr(r, key), reverse=True)
    return [[r.full_name, getattr(r, key)] for r in ordered[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.github", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=0.25)
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("--budget", type=int, default=4000, help="requests an hour")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cachedproxy-github-"))
    token = secrets.token_urlsafe(12)
    procs: list[subprocess.Popen] = []
    logs = (work / "processes.log").open("w")
    quiet: dict[str, Any] = {"stdout": logs, "stderr": subprocess.STDOUT}
    repos = sample_orgs()["Netflix"]["repos"]
    try:
        demo_port, redis_port, api_port = free_port(), free_port(), free_port()
        procs.append(spawn([sys.executable, "-m", "demo", "--port", str(demo_port)],
                           {**os.environ, "DEMO_TOKEN": token}, cwd=PROJECT_DIR, **quiet))
        wait_for(lambda: port_open("127.0.0.1", demo_port), 10, "demo", procs[-1])
        control = f"http://127.0.0.1:{demo_port}/_demo"
        procs.append(start_redis(work / "redis", redis_port, appendonly=False))
        env = isolated_env(
            work, f"redis://127.0.0.1:{redis_port}/0", f"http://127.0.0.1:{demo_port}", token,
            GITHUB_PAGE_SIZE="30", GITHUB_TTL=str(args.ttl),
            GITHUB_BUDGET_PER_HOUR=str(args.budget), API_PORT=str(api_port),
            LOG_LEVEL="WARNING",
        )
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        procs.append(celery(env, "beat", "--schedule", str(work / "beat"), **quiet))
        procs.append(start_api(env, **quiet))
        api = f"http://127.0.0.1:{api_port}"
        session = requests.Session()
        warm_up = time.monotonic()
        for field in FIELDS:  # the first reads; the organisation is prefetched anyway
            session.get(f"{api}/view/top/5/{field}", timeout=30)
        warm_up_s = time.monotonic() - warm_up
        warm_up_requests = count(requests.get(f"{control}/counters", timeout=5).json())

        latencies: list[float] = []
        wrong = 0
        changed_at: float | None = None
        seen_after: float | None = None
        before = repos
        target = repos[100]  # on page 4 of 5
        start = time.monotonic()
        for i in range(int(args.seconds / args.every)):
            if changed_at is None and time.monotonic() - start >= args.seconds / 2:
                requests.put(f"{control}/github/repos/{target.full_name}",
                             json={"stargazers_count": 99_999}, timeout=5)
                before = copy.deepcopy(repos)
                target.stargazers_count = 99_999
                changed_at = time.monotonic()
            field = list(FIELDS)[i % len(FIELDS)]
            sent = time.perf_counter()
            r = session.get(f"{api}/view/top/5/{field}", timeout=30)
            latencies.append((time.perf_counter() - sent) * 1000)
            answer = r.json() if r.status_code == 200 else None
            right = [ranking(repos, field, 5)]
            if changed_at is not None and seen_after is None:
                right.append(ranking(before, field, 5))  # not refreshed yet: still right
            if answer not in right:
                wrong += 1
            elif changed_at is not None and seen_after is None and answer == right[0] \
                    and field == "stars":
                seen_after = time.monotonic() - changed_at
            time.sleep(max(start + (i + 1) * args.every - time.monotonic(), 0))
        counters = requests.get(f"{control}/counters", timeout=5).json()["github"]
        watched_s = time.monotonic() - start
    finally:
        stop(list(reversed(procs)))
    by_kind = {kind: counters.get(f"github:{kind}", {}).get("Netflix", {})
               for kind in ("org", "repos", "members")}
    total = sum(n for statuses in by_kind.values() for n in statuses.values())
    not_modified = sum(statuses.get("304", 0) for statuses in by_kind.values())
    elapsed_h = (time.monotonic() - warm_up) / 3600
    report = {
        "warm_up_s": round(warm_up_s, 2),
        "responses": len(latencies), "wrong_responses": wrong,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1], 1),
        "max_ms": round(max(latencies), 1),
        "change_visible_after_s": None if seen_after is None else round(seen_after, 1),
        "upstream_requests_by_kind": by_kind,
        "upstream_304_share": round(not_modified / total, 3) if total else None,
        "upstream_requests_per_hour": round(total / elapsed_h),
        "budget_per_hour": args.budget,
        # After the warm-up's misses (never held back), refreshes spend from a bucket
        # of the budget's rate holding BURST seconds of it.
        "refresh_requests": total - warm_up_requests,
        "allowed_by_the_budget": round(args.budget / HOUR * watched_s
                                       + capacity(args.budget / HOUR), 1),
    }
    print(json.dumps(report, indent=2))
    ok = (wrong == 0 and report["max_ms"] <= 50
          and report["refresh_requests"] <= report["allowed_by_the_budget"])
    print("github: every answer right, none waited on upstream, within budget" if ok
          else "github: CHECK FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
