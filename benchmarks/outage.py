"""``python -m benchmarks.outage``: what an upstream outage costs, and how fast it heals.

Starts ``make run``'s launcher (default settings but a 20 s TTL), makes ``--resources``/2
events live by reading them steadily, then the demo upstream answers 503 to everything for
``--seconds`` (default 60). It reports the clients' answers during the outage, upstream
requests during it against the probe intervals the back-off allows (one request each),
and how long after the outage every live resource has been refreshed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests

from benchmarks.soak import launch
from launcher.services import free_port
from shared.config.settings import Settings
from shared.policy.timing import retry_delay
from shared.store.entry import Entry
from shared.store.keys import Keys
from tests.harness import stop

VIEW = "/events-with-subscriptions"
KEYS = Keys("cpsoak")
TTL = 20


def upstream_requests(demo: str) -> int:
    counters = requests.get(f"{demo}/counters", timeout=5).json()["requests"]
    return sum(n for kind in counters.values() for by_id in kind.values()
               for n in by_id.values())


def probe_intervals(seconds: float, settings: Settings) -> int:
    """How many probes the back-off allows in ``seconds`` after the upstream fails."""
    plan, elapsed, n = settings.refresh, 0.0, 0
    while True:
        elapsed += retry_delay(n + 1, plan.retry_base, plan.probe_max)
        if elapsed > seconds:
            return n
        n += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.outage", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--resources", type=int, default=80, help="live resources (2 a view)")
    args = parser.parse_args(argv)
    events = [f"outage-{i}" for i in range(args.resources // 2)]
    api_port = free_port()
    with tempfile.TemporaryDirectory(prefix="cachedproxy-outage-") as tmp:
        proc, _, started = launch(Path(tmp), {
            "API_PORT": str(api_port), "FLOWER_PORT": str(free_port()), "CACHE_TTL": str(TTL)})
        try:
            demo = started["demo upstream"]["url"].removesuffix("/api/v2") + "/_demo"
            api = f"http://127.0.0.1:{api_port}"
            store = redis.Redis.from_url(started["redis"]["url"])
            for event in events:
                requests.put(f"{demo}/events/{event}", json={"title": event, "names": ["A"]},
                             timeout=5)
            answers: dict[int, int] = {}
            reading = threading.Event()

            def read() -> None:  # every view twice a second
                session = requests.Session()
                while not reading.is_set():
                    for event in events:
                        status = session.get(f"{api}{VIEW}/{event}/", timeout=30).status_code
                        answers[status] = answers.get(status, 0) + 1
                    reading.wait(0.5)

            for event in events:
                requests.get(f"{api}{VIEW}/{event}/", timeout=30).raise_for_status()
            reader = threading.Thread(target=read)
            reader.start()
            time.sleep(TTL)  # a refresh period of normal running
            answers.clear()
            before = upstream_requests(demo)
            requests.put(f"{demo}/fault", json={"mode": "error", "status": 503}, timeout=5)
            time.sleep(args.seconds)
            during = upstream_requests(demo) - before
            during_answers = dict(answers)
            requests.delete(f"{demo}/fault", timeout=5)
            ended = time.time()
            resources = [f"c42:{kind}:{e}" for e in events for kind in ("event", "subscriptions")]
            healed = None
            while time.time() - ended < 60:
                with store.pipeline(transaction=False) as pipe:
                    for resource in resources:
                        pipe.hgetall(KEYS.entry(resource))
                    entries = [Entry.from_fields(f) for f in pipe.execute()]
                if all(e is not None and e.checked_at > ended for e in entries):
                    healed = time.time() - ended
                    break
                time.sleep(0.1)
            reading.set()
            reader.join()
        finally:
            stop([proc], timeout=15)
    settings = Settings()
    allowed = probe_intervals(args.seconds, settings)
    report = {
        "outage_s": args.seconds, "live_resources": len(events) * 2,
        "client_answers_during_outage": during_answers,
        "upstream_requests_during_outage": during,
        "probe_intervals_in_outage": allowed,
        "requests_per_probe_interval": round(during / max(allowed, 1), 2),
        "all_refreshed_after_s": None if healed is None else round(healed, 1),
    }
    print(json.dumps(report, indent=2))
    return 0 if healed is not None and set(during_answers) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
