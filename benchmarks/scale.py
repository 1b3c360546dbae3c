"""``python -m benchmarks.scale``: refresh ahead with many live resources, one worker.

For each ``--resources`` count (default 1,000 and 10,000) it starts Redis, the demo
upstream (with one event for every two resources), one worker (its default
concurrency) and beat, and puts the system in its steady state directly: every
resource stored (as a fetch would store it), read recently, and due for refresh at a
time spread evenly over one refresh period (``--ttl`` × refresh ratio). From a fifth of
a period after the worker started (refreshes that came due meanwhile run late once) it
watches for ``--periods`` periods and reports:

- the tick's cost: mean duration of a tick that claimed refreshes, per call and per
  resource claimed (from the worker's ``tick`` log lines);
- refresh lag p50 / p99 (``cachedproxy_refresh_lag_seconds``, bucket bounds);
- upstream requests per resource per period (the demo's counters);
- Redis memory per entry (used memory over the entries) against the size of the
  trimmed data stored in it;

and, last, how each grows from the first count to the last, as ratios per resource.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import redis

from benchmarks import NAMES, demo_upstream, each
from launcher.services import celery, free_port
from shared.config.settings import Settings
from shared.store.entries import EntryStore
from shared.store.entry import fetched, keep_until
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from tests.harness import isolated_env, start_redis, stop, wait_for_worker

KEYS = Keys("cachedproxy")
LAG = "cachedproxy_refresh_lag_seconds"


def lag_quantiles(store: redis.Redis) -> tuple[float, float]:
    """p50 and p99 of the workers' refresh lag histogram, as bucket upper bounds."""
    fields = cast(dict[Any, Any], store.hgetall(KEYS.metrics()))
    raw = {k.decode(): int(v) for k, v in fields.items() if k.startswith(b"refresh_lag_bucket")}
    buckets = sorted((float("inf") if k.rsplit("|", 1)[-1] == "+Inf" else
                      float(k.rsplit("|", 1)[-1]), n) for k, n in raw.items())
    total = sum(n for _, n in buckets)
    found = []
    for q in (0.5, 0.99):
        seen = 0
        for le, n in buckets:
            seen += n
            if total and seen >= q * total:
                found.append(le)
                break
        else:
            found.append(float("nan"))
    return found[0], found[1]


def seed(store: redis.Redis, events: list[str], ttl: int, period: float) -> tuple[int, int]:
    """Every resource stored, read now, due evenly over one period; returns the number
    of entries and the bytes of trimmed data stored."""
    entries, schedule = EntryStore(store, KEYS), Schedule(store, KEYS)
    now = time.time()
    resources = [f"c42:{kind}:{e}" for e in events for kind in ("event", "subscriptions")]
    data_bytes = 0
    pipe = store.pipeline(transaction=False)
    for i, resource in enumerate(resources):
        due = now + period * (i + 0.5) / len(resources)
        kept = ({"id": resource.rsplit(":", 1)[1], "title": f"Event {i}"}
                if ":event:" in resource else {"count": 3, "pages": [["Ada", "Grace", "Linus"]]})
        entry = fetched(kept, (), due - period, ttl)
        data_bytes += len(entry.encoded_data())
        entries.save(resource, entry, keep_until(entry, 3600))
        schedule.succeeded(resource, due)
    schedule.record_reads(pipe, resources, now, 3600)
    pipe.execute()
    return len(resources), data_bytes


def run(count: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = [f"s{i}" for i in range(count // 2)]
    upstream, server, base_url = demo_upstream(events)
    port = free_port()
    procs = [start_redis(work / "redis", port, False)]
    store = redis.Redis(port=port)
    base_memory = store.info("memory")["used_memory"]
    period = args.ttl * Settings().refresh.ratio
    stored, data_bytes = seed(store, events, args.ttl, period)
    entry_memory = (store.info("memory")["used_memory"] - base_memory) / stored
    env = isolated_env(work, f"redis://127.0.0.1:{port}/0",
                       base_url, upstream.token,
                       LOG_LEVEL="INFO", CACHE_TTL=str(args.ttl), C42_PAGE_SIZE="100")
    log_path = work / "worker.log"
    try:
        with log_path.open("w") as out:
            worker = celery(env, "worker", "--without-mingle", "--without-gossip",
                            stdout=out, stderr=subprocess.STDOUT)
        procs.append(worker)
        wait_for_worker(env, worker)
        with (work / "beat.log").open("w") as out:
            procs.append(celery(env, "beat", "--schedule", str(work / "beat-schedule"),
                                stdout=out, stderr=subprocess.STDOUT))
        # Refreshes that came due while the worker started run late once: the steady
        # state is measured from a fifth of a period on.
        time.sleep(period / 5)
        upstream.reset()
        for event in events:  # reset() restores the sample events only
            upstream.put_event(event, f"Event {event}", NAMES)
        lag_fields = [k for k in cast(list[bytes], store.hkeys(KEYS.metrics()))
                      if k.startswith(b"refresh_lag")]
        if lag_fields:
            store.hdel(KEYS.metrics(), *lag_fields)
        log_from = log_path.stat().st_size
        watched = args.periods * period
        time.sleep(watched)
        counters = upstream.counters()
        requests_made = sum(n for kind in ("event", "subscriptions")
                            for by_id in counters.get(kind, {}).values() for n in by_id.values())
        p50, p99 = lag_quantiles(store)
        ticks = []
        with log_path.open() as log:
            log.seek(log_from)
            lines = log.read().splitlines()
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "tick" and record.get("claimed"):
                ticks.append((record["duration_ms"], record["claimed"]))
        return {
            "resources": stored,
            "watched_s": round(watched, 1),
            "ticks": len(ticks),
            "tick_ms_mean": round(statistics.mean(d for d, _ in ticks), 2) if ticks else None,
            "tick_ms_per_claim": round(sum(d for d, _ in ticks) / max(sum(c for _, c in ticks), 1),
                                       3),
            "refresh_lag_p50_s": p50,
            "refresh_lag_p99_s": p99,
            "upstream_requests_per_resource_per_period": round(
                requests_made / stored / args.periods, 3),
            "redis_bytes_per_entry": round(entry_memory),
            "trimmed_data_bytes_per_entry": round(data_bytes / stored),
        }
    finally:
        stop(list(reversed(procs)))
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ttl", type=int, default=120)
    parser.add_argument("--periods", type=float, default=1.5)
    args = parser.parse_args(argv)
    results = each("scale", args.resources, lambda value, work: run(value, args, work))
    first, last = results[0], results[-1]
    growth = last["resources"] / first["resources"]
    print(json.dumps({"growth": {
        "resources": growth,
        "tick_ms_per_claim": round(last["tick_ms_per_claim"] / first["tick_ms_per_claim"], 2),
        "redis_bytes_per_entry": round(
            last["redis_bytes_per_entry"] / first["redis_bytes_per_entry"], 2),
        "upstream_requests_per_resource_per_period": round(
            last["upstream_requests_per_resource_per_period"]
            / first["upstream_requests_per_resource_per_period"], 2),
    }}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
