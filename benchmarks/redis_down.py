"""``python -m benchmarks.redis_down``: Redis stopped, every API process answering alike.

Starts Redis, a worker and the API with ``API_WORKERS`` processes (default 2), reads
``--views`` views ``--reads`` times each, every request on a new connection (so the
kernel spreads them over the processes), then stops Redis for ``--seconds`` while a
client reads those views in turn, each on a new connection. Reports how the reads were
answered: every one should be a 200 from a process's own copy or from the copies the
server's processes share (api/shelf.py).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from demo.server import API, DemoUpstream, make_demo_server
from tests.harness import Stack, isolated_env

VIEW = "/events-with-subscriptions"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_down",
                                     description=__doc__)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--reads", type=int, default=3, help="reads of each view before")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cachedproxy-redis-down-"))
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    events = [f"down-{n}" for n in range(args.views)]
    for event_id in events:
        upstream.put_event(event_id, f"Event {event_id}", ["Ada", "Grace"])
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}{API}"
    env = isolated_env(work, "redis://127.0.0.1:1/0", base_url, upstream.token,
                       LOG_LEVEL="WARNING", API_WORKERS=str(args.workers))
    answers: Counter[str] = Counter()
    try:
        with Stack(env, work / "logs") as stack:
            stack.redis_server()
            stack.worker()
            api = stack.api()
            for _ in range(args.reads):
                for event_id in events:
                    assert requests.get(f"{api}{VIEW}/{event_id}/", timeout=15).ok
            stack.stop_redis()
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                for event_id in events:
                    r = requests.get(f"{api}{VIEW}/{event_id}/", timeout=15,
                                     headers={"Connection": "close"})
                    answers[str(r.status_code)] += 1
            stack.start_redis_again()
    finally:
        upstream.release()
        server.shutdown()
    total = sum(answers.values())
    print(json.dumps({"api_processes": args.workers, "views": args.views,
                      "reads_before": args.reads, "redis_down_s": args.seconds,
                      "reads_while_down": total, "answers": dict(answers),
                      "share_200": round(answers["200"] / total, 4)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
