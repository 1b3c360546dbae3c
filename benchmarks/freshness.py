"""``python -m benchmarks.freshness``: how fresh answers are when an upstream's budget
cannot pay for every TTL, against a truth known exactly.

The upstream (the demo, in this process) has ``EVENTS`` events that change as Poisson
processes of known rates: 10 about every 10 s, 20 about every 60 s, 30 never; their
subscriptions never change. Clients read 20 views a second, Zipf-distributed over an
order unrelated to how often events change. Each answer is compared with the event's
version when the request was sent: the share that differ is the stale share (read-
weighted, since reads are). ``CACHE_TTL=30`` asks for 120 resources / 24 s = 5 requests
a second; the cases:

- ``short-plan``: a budget of 2 requests a second, budget plans on (``REFRESH_MIN_TTL=5``,
  ``REFRESH_MAX_AGE=600``);
- ``short-clock``: the same budget, every resource on the TTL's clock (the bounds pinned
  to the TTL: today's fixed clock, paced to the budget);
- ``ample``: a budget of 10 a second, which pays for every TTL (plans stay off).

Each case runs its own stack (Redis, worker, beat, API), all at once. Reported per case:
stale share, upstream requests a second, the oldest ``Age`` served; and the model's
figures at the same request rate: the freshness-optimal allocation for the known rates
and reads (the analytic optimum) and a uniform clock.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import requests

from benchmarks import demo_upstream
from launcher.services import celery, free_port
from shared.policy.freshness import (
    WINDOW,
    Check,
    Item,
    Limits,
    Observed,
    allocate,
    change_rate,
    freshness,
    plan,
)
from shared.policy.timing import mean_period
from shared.store.freshness import FreshnessStore
from shared.store.keys import Keys
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

EVENTS = 60
RATES = [1 / 10] * 10 + [1 / 60] * 20 + [0.0] * 30  # changes a second, by event
TTL, RATIO, MIN_TTL, MAX_AGE = 30, 0.8, 5, 600
PREFIX = "cpfresh"
CASES = {  # name: (budget per hour, min_ttl, max_age)
    "short-plan": (7200, MIN_TTL, MAX_AGE),
    "short-clock": (7200, TTL, TTL),
    "ample": (36000, MIN_TTL, MAX_AGE),
}


def weights(seed: int) -> list[float]:
    """Each event's share of reads: Zipf (s = 1) over a random order."""
    order = list(range(EVENTS))
    random.Random(seed).shuffle(order)
    raw = [1 / (order[i] + 1) for i in range(EVENTS)]
    return [w / sum(raw) for w in raw]


class Truth:
    """The upstream's events, changed as Poisson processes; each one's version."""

    def __init__(self, upstream: Any, seed: int) -> None:
        self.upstream = upstream
        self.version = [0] * EVENTS
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        for i in range(EVENTS):
            self._set(i)

    def _set(self, i: int) -> None:
        self.upstream.put_event(f"e{i:02d}", f"e{i:02d} v{self.version[i]}", ["Ada", "Grace"])

    def run(self) -> None:
        """Change events at their Poisson times until stopped."""
        now = time.monotonic()
        due = [(now + self.rng.expovariate(rate), i) for i, rate in enumerate(RATES) if rate]
        heapq.heapify(due)
        while due and not self.stopped.wait(max(due[0][0] - time.monotonic(), 0)):
            at, i = heapq.heappop(due)
            self.version[i] += 1
            self._set(i)
            heapq.heappush(due, (at + self.rng.expovariate(RATES[i]), i))


def read(url: str, truth: Truth, shares: list[float], seconds: float, per_second: float,
         seed: int) -> dict[str, Any]:
    """Read views at ``per_second`` for ``seconds``; count answers behind the truth."""
    rng, session = random.Random(seed), requests.Session()
    answers = stale = 0
    oldest, errors = 0, dict[str, int]()  # errors by status (or exception)
    r: requests.Response | None = None
    start = time.monotonic()
    for n in range(int(seconds * per_second)):
        i = rng.choices(range(EVENTS), shares)[0]
        current = truth.version[i]
        try:
            r = session.get(f"{url}/events-with-subscriptions/e{i:02d}/", timeout=30)
            seen = int(r.json()["title"].rsplit(" v", 1)[1])
        except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
            code = str(r.status_code) if isinstance(exc, KeyError) and r is not None \
                else type(exc).__name__
            errors[code] = errors.get(code, 0) + 1
        else:
            answers += 1
            stale += seen < current
            oldest = max(oldest, int(r.headers.get("Age", "0")))
        time.sleep(max(start + (n + 1) / per_second - time.monotonic(), 0))
    return {"answers": answers, "stale": stale, "errors": errors, "oldest_age_s": oldest}


def model(budget: float, shares: list[float], reads: float, bounds: tuple[float, float]
          ) -> dict[str, float]:
    """The stale shares the model gives at ``budget`` requests a second: the optimal
    allocation for the known rates and reads, and a uniform clock."""
    shortest, longest = (mean_period(bound, RATIO) for bound in bounds)
    items = [Item(rate, share * reads, 1, shortest, longest)
             for rate, share in zip(RATES, shares, strict=True)]
    items += [Item(0.0, share * reads, 1, shortest, longest)
              for share in shares]  # the subscriptions
    best = allocate(items, budget)
    uniform = max(len(items) / budget, mean_period(TTL, RATIO))

    def stale(intervals: list[float]) -> float:  # a view is stale when its event is
        return sum(s * (1 - freshness(r, t))
                   for r, s, t in zip(RATES, shares, intervals[:EVENTS], strict=True))

    return {"optimum": stale(best), "uniform_clock": stale([uniform] * EVENTS)}


def run(case: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One case on its own stack: warm up, then measure."""
    budget, min_ttl, max_age = CASES[case]
    (work / case).mkdir(parents=True, exist_ok=True)
    upstream, server, base_url = demo_upstream([])
    truth = Truth(upstream, args.seed)
    procs: list[subprocess.Popen] = []
    logs = (work / f"{case}.log").open("w")
    quiet: dict[str, Any] = {"stdout": logs, "stderr": subprocess.STDOUT}
    try:
        redis_port, api_port = free_port(), free_port()
        procs.append(start_redis(work / f"redis-{case}", redis_port, appendonly=False))
        env = isolated_env(
            work / case, f"redis://127.0.0.1:{redis_port}/0", base_url, upstream.token,
            CACHE_TTL=str(TTL), C42_BUDGET_PER_HOUR=str(budget), REFRESH_MIN_TTL=str(min_ttl),
            REFRESH_MAX_AGE=str(max_age), API_PORT=str(api_port), LOG_LEVEL="WARNING",
            KEY_PREFIX=PREFIX)
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        procs.append(celery(env, "beat", "--schedule", str(work / f"beat-{case}"), **quiet))
        procs.append(start_api(env, **quiet))
        changes = threading.Thread(target=truth.run, daemon=True)
        changes.start()
        url, shares = f"http://127.0.0.1:{api_port}", weights(args.seed)
        read(url, truth, shares, args.warmup, args.reads, args.seed + 1)
        before = upstream.total_requests()
        measured = read(url, truth, shares, args.seconds, args.reads, args.seed + 2)
        rate = (upstream.total_requests() - before) / args.seconds
        plans = FreshnessStore(redis.Redis.from_url(env["REDIS_URL"]), Keys(PREFIX)).summaries()
    finally:
        truth.stopped.set()
        stop(list(reversed(procs)))
        server.shutdown()
    figures = model(rate, shares, args.reads, (min_ttl, max_age))
    share = measured["stale"] / max(measured["answers"], 1)
    return {
        "case": case, "budget_per_s": round(budget / 3600, 3), **measured,
        "stale_share": round(share, 4), "upstream_per_s": round(rate, 3),
        "model_optimum_stale": round(figures["optimum"], 4),
        "model_uniform_clock_stale": round(figures["uniform_clock"], 4),
        "vs_optimum": round(share / figures["optimum"], 3) if figures["optimum"] else None,
        "plan": plans.get("c42"),  # as GET /admin/freshness shows it, at the end
    }


def plan_cost(resources: int) -> dict[str, Any]:
    """CPU milliseconds to estimate ``resources`` change rates from 16 checks each and to
    plan their budget (the plan task's work, without Redis)."""
    rng = random.Random(1)
    histories = [tuple(Check(rng.uniform(20, 40), rng.random() < 0.3) for _ in range(WINDOW))
                 for _ in range(resources)]
    started = time.process_time()
    rates = [change_rate(history, TTL) for history in histories]
    estimated = time.process_time()
    observed = [Observed(rate, rng.paretovariate(1.0), 1) for rate in rates]
    made = plan(observed, Limits(TTL, RATIO, MIN_TTL, MAX_AGE), resources / 48)
    assert made.ttls is not None  # the budget is short: a tenth of the TTL clock's
    return {"resources": resources, "estimate_ms": round((estimated - started) * 1000),
            "plan_ms": round((time.process_time() - estimated) * 1000)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.freshness", description=__doc__)
    parser.add_argument("--warmup", type=float, default=240)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--reads", type=float, default=20, help="views read a second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--plan-cost", type=int, metavar="RESOURCES",
                        help="only time estimating and planning this many resources")
    args = parser.parse_args(argv)
    if args.plan_cost:
        print(json.dumps(plan_cost(args.plan_cost)))
        return 0
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="cachedproxy-freshness-"))
    with ThreadPoolExecutor(len(cases)) as pool:
        results = {r["case"]: r for r in pool.map(lambda c: run(c, args, work), cases)}
    for result in results.values():
        print(json.dumps(result), flush=True)
    report: dict[str, Any] = {"cases": results}
    if {"short-plan", "short-clock"} <= results.keys():
        plan, clock = results["short-plan"], results["short-clock"]
        report["plan_vs_clock_stale"] = round(
            plan["stale_share"] / max(clock["stale_share"], 1e-9), 3)
        report["plan_vs_clock_requests"] = round(
            plan["upstream_per_s"] / max(clock["upstream_per_s"], 1e-9), 3)
        report["plan_vs_optimum"] = plan["vs_optimum"]
        report["oldest_age_within_max_age"] = plan["oldest_age_s"] <= MAX_AGE
    print(json.dumps(report, indent=2))
    print(f"logs: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
