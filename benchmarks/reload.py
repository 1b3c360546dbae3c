"""``python -m benchmarks.reload``: a catalogue applied with SIGHUP while clients read,
against the reference of restarting the API to apply it.

Starts Redis, a worker and the API (``--workers`` server processes, default 2) on a
catalogue file of its own, warms a view, then, with ``--clients`` threads reading it
(each request on a new connection, so the kernel spreads them over the processes):

- reload: adds a view to the catalogue and sends SIGHUP to the API's main process;
  counts the reads that were not 200 and the seconds until every server process
  answers the new view (the last old one stopped);
- restart (the reference): adds another view, stops the API (SIGTERM, its in-flight
  requests finished) and starts it again on the same port; counts the same.

One JSON line: each case's reads, failed reads and seconds, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from demo.server import API, DemoUpstream, make_demo_server
from shared.config.settings import PROJECT_DIR
from tests.harness import Stack, isolated_env

VIEW = "/events-with-subscriptions/launch-party/"
NEW_VIEW = """
[views.{name}]
route = "/{name}/{{id}}/"
params.id = {{ type = "id" }}
parts = {{ event = "c42:event:{{id}}" }}
body = "{{title: event.title}}"
"""


class Readers:
    """``clients`` threads reading a URL until stopped; what they got, by outcome."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.stopped = url, threading.Event()
        self.got: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._read, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        while not self.stopped.is_set():
            try:
                outcome = str(requests.get(self.url, timeout=10,
                                           headers={"Connection": "close"}).status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with self.lock:
                self.got[outcome] += 1

    def stop(self) -> Counter[str]:
        self.stopped.set()
        for thread in self.threads:
            thread.join()
        return self.got


def serves(url: str, times: int = 20) -> bool:
    """``times`` reads in a row of ``url``, each on a new connection, all 200."""
    try:
        return all(requests.get(url, timeout=5, headers={"Connection": "close"}).ok
                   for _ in range(times))
    except requests.RequestException:
        return False


def case(api: str, clients: int, apply: Callable[[], None], ready: Callable[[], bool]
         ) -> dict[str, Any]:
    """Read while ``apply`` runs; the seconds until ``ready``, and what the reads got."""
    readers = Readers(f"{api}{VIEW}", clients)
    time.sleep(1.0)
    started = time.monotonic()
    apply()
    while not ready():
        time.sleep(0.05)
    seconds = time.monotonic() - started
    time.sleep(1.0)
    got = readers.stop()
    failed = sum(n for outcome, n in got.items() if outcome != "200")
    return {"reads": sum(got.values()), "failed": failed, "seconds": round(seconds, 2),
            "outcomes": dict(got)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reload", description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="API server processes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cachedproxy-reload-"))
    catalogue = work / "catalogue.toml"
    catalogue.write_text((PROJECT_DIR / "catalogue.toml").read_text())
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = isolated_env(work, "redis://127.0.0.1:1/0",
                       f"http://127.0.0.1:{server.server_address[1]}{API}", upstream.token,
                       LOG_LEVEL="INFO", API_WORKERS=str(args.workers),
                       CACHEDPROXY_CATALOGUE=str(catalogue))
    with Stack(env, work / "logs") as stack:
        stack.redis_server()
        stack.worker()
        port = str(int(stack.api().rsplit(":", 1)[1]))
        api, main_process = f"http://127.0.0.1:{port}", stack.procs[-1]
        assert serves(f"{api}{VIEW}", 3)
        log = work / "logs" / "api.log"

        def replaced() -> bool:
            return log.read_text().count("Stopped old worker") >= args.workers

        def reload() -> None:
            catalogue.write_text(catalogue.read_text() + NEW_VIEW.format(name="by-reload"))
            os.kill(main_process.pid, signal.SIGHUP)

        def restart() -> None:
            catalogue.write_text(catalogue.read_text() + NEW_VIEW.format(name="by-restart"))
            stack.stop(main_process)
            stack.api(API_PORT=port)

        reloaded = case(api, args.clients, reload,
                        lambda: replaced() and serves(f"{api}/by-reload/launch-party/"))
        restarted = case(api, args.clients, restart,
                         lambda: serves(f"{api}/by-restart/launch-party/"))
    print(json.dumps({
        "reload": reloaded, "restart": restarted,
        "failed_ratio": (reloaded["failed"] / restarted["failed"]) if restarted["failed"]
        else None,
        "seconds_ratio": round(reloaded["seconds"] / restarted["seconds"], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
