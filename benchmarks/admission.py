"""``python -m benchmarks.admission``: what views read once cost upstream afterwards.

Starts Redis, a worker, beat and the API (TTL ``--ttl``), reads ``--ids`` distinct
existing events' views once each (16 at a time), and ``--control`` others twice, the
second read after the read period (a view wanted again). Then, for ``--seconds``, nobody
reads anything. Reports the upstream requests of the views read once after their first
fetches (refreshes bought by a single read: none are expected), as a ratio of all their
requests to their first fetches, and the refreshes of the control views (refresh-ahead
at work: about ``seconds / (ttl x 0.8)`` each).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from demo.server import API, DemoUpstream, make_demo_server
from tests.harness import Stack, isolated_env

VIEW = "/events-with-subscriptions"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admission",
                                     description=__doc__)
    parser.add_argument("--ids", type=int, default=5000)
    parser.add_argument("--control", type=int, default=20)
    parser.add_argument("--ttl", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cachedproxy-admission-"))
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    once = [f"once-{n}" for n in range(args.ids)]
    twice = [f"twice-{n}" for n in range(args.control)]
    for event_id in once + twice:
        upstream.put_event(event_id, f"Event {event_id}", ["Ada"])
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}{API}"
    env = isolated_env(work, "redis://127.0.0.1:1/0", base_url, upstream.token,
                       LOG_LEVEL="WARNING", CACHE_TTL=str(args.ttl))

    def requests_for(ids: list[str]) -> int:
        return sum(upstream.count(kind, e) for e in ids for kind in ("event", "subscriptions"))

    try:
        with Stack(env, work / "logs") as stack:
            stack.redis_server()
            stack.worker(concurrency=64)
            stack.beat()
            api = stack.api()

            def read(event_id: str) -> int:
                return requests.get(f"{api}{VIEW}/{event_id}/", timeout=60).status_code

            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(read, twice + once))
            assert set(statuses) == {200}, set(statuses)
            first = requests_for(once)
            time.sleep(args.ttl * 0.8 + 1)  # past the read period: a second read counts
            assert {read(e) for e in twice} == {200}
            control_before = requests_for(twice)
            time.sleep(args.seconds)
            after = requests_for(once)
            control = requests_for(twice) - control_before
    finally:
        upstream.release()
        server.shutdown()
    print(json.dumps({
        "ids_read_once": args.ids, "ttl_s": args.ttl, "quiet_s": args.seconds,
        "first_fetches": first, "upstream_requests_after": after - first,
        "all_vs_first": round(after / first, 3),
        "control_read_twice": args.control, "control_refresh_requests": control,
        "control_per_view": round(control / max(args.control, 1), 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
