"""``python -m benchmarks``: hit throughput, cold-miss latency and the cold burst.

Every figure is printed next to a reference measured in the same run on the same machine:
- hit: the API's view vs. nginx ``proxy_cache`` serving the same URL from its cache (one
  worker; installed like wrk), vs. the same server stack returning a constant body of the
  same size (its ceiling), and vs. that stack returning one Redis GET (benchmarks.reference);
  with the API's CPU time per 1,000 hits;
- 304: the same view with a matching ``If-None-Match`` vs. the 200 hit;
- hit during misses: the same hit load while four other events' fetches stall upstream;
- cold miss: the API's first answer vs. a client making the same upstream requests itself,
  one after another (the event and each subscription page, at the demo's latency);
- burst: N concurrent cold requests must cost one upstream pass.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from benchmarks.reference import REFERENCE_KEY
from demo.server import API, DemoUpstream, make_demo_server
from launcher.services import celery, free_port, http_ok, port_open, spawn, wait_for
from shared.config.settings import PROJECT_DIR
from shared.store.keys import Keys
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

EVENT = "launch-party"
VIEW = f"/events-with-subscriptions/{EVENT}/"


def wrk(url: str, seconds: int, connections: int, *headers: str) -> dict[str, float]:
    sent = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *sent, url],
        capture_output=True, text=True, check=True,
    ).stdout
    result = parse_wrk(out)
    if "non_2xx_3xx" in result:
        raise RuntimeError(f"wrk saw {result['non_2xx_3xx']:g} errors on {url}")
    return result


def parse_wrk(out: str) -> dict[str, float]:
    """wrk's report as numbers: req/s, requests, p50/p99 in ms, non-2xx/3xx answers."""
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore
              "requests": int(re.search(r"(\d+) requests in", out).group(1))}  # type: ignore
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if m:
            result[f"p{pct}_ms"] = round(
                float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)], 2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        result["non_2xx_3xx"] = int(errors.group(1))
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children still running (the API's
    server and its worker processes), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi;
  uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  proxy_cache_path {work}/nginx-cache keys_zone=views:10m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_cache views;
      proxy_cache_valid 200 10m;
      proxy_ignore_headers Cache-Control Expires;
      add_header X-Cache-Status $upstream_cache_status;
      {extra}
    }}
  }}
}}
"""


def start_nginx(work: Path, upstream_port: int, extra: str = "") -> tuple[subprocess.Popen, int]:
    """nginx with proxy_cache in front of the API, one worker, on a free port; ``extra``
    directives go in its location (e.g. the API key it sends)."""
    port = free_port()
    conf = work / "nginx.conf"
    # Started as root, nginx's worker would switch to www-data, which cannot write into
    # this private directory; it stays the user that runs the benchmark.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, work=work, port=port, upstream=upstream_port,
                                      extra=extra))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open("127.0.0.1", port), 10, "nginx", proc)
    return proc, port


def timed(fn: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50, help="demo upstream latency")
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cachedproxy-bench-"))
    procs: list[subprocess.Popen] = []
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}{API}"
    try:
        redis_port = free_port()
        procs.append(start_redis(work / "redis", redis_port, appendonly=False))
        env = isolated_env(work, f"redis://127.0.0.1:{redis_port}/0", base_url, upstream.token,
                           LOG_LEVEL="WARNING")
        logs = (work / "processes.log").open("w")
        quiet = {"stdout": logs, "stderr": subprocess.STDOUT}
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        api_port, ref_port = free_port(), free_port()
        api_proc = start_api({**env, "API_PORT": str(api_port)}, **quiet)
        procs.append(api_proc)
        ref = spawn([sys.executable, "-m", "benchmarks.reference"],
                    {**env, "API_PORT": str(ref_port)}, cwd=PROJECT_DIR, **quiet)
        procs.append(ref)
        api = f"http://127.0.0.1:{api_port}"
        store = redis.Redis(port=redis_port)
        keys = Keys("cachedproxy")

        # Hit path against the references, same body size.
        first = requests.get(api + VIEW, timeout=30)
        body, etag = first.content, first.headers["ETag"]
        store.set(f"cachedproxy:{REFERENCE_KEY}", body)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{ref_port}/reference"), 30, "reference", ref)
        nginx, nginx_port = start_nginx(work, api_port)
        procs.append(nginx)
        cached = f"http://127.0.0.1:{nginx_port}{VIEW}"
        requests.get(cached, timeout=30)
        warm = requests.get(cached, timeout=30)
        assert warm.headers.get("X-Cache-Status") == "HIT", (warm.status_code, warm.headers)
        wrk(api + VIEW, 2, args.connections)  # warm-up
        cpu_before = cpu_seconds(api_proc.pid)  # the server and its worker processes
        hit = wrk(api + VIEW, args.seconds, args.connections)
        cpu_ms_per_1000 = (cpu_seconds(api_proc.pid) - cpu_before) * 1000 / (
            hit["rps"] * args.seconds / 1000)
        # 200s and 304s in turns (A B B A), so neither gains from running first or last.
        half = max(args.seconds // 2, 1)
        conditional = f"If-None-Match: {etag}"
        turns = [wrk(api + VIEW, half, args.connections, *([conditional] if nm else []))
                 for nm in (False, True, True, False)]
        not_modified = turns[1]
        nginx_hit = wrk(cached, args.seconds, args.connections)
        ceiling = wrk(f"http://127.0.0.1:{ref_port}/constant", args.seconds, args.connections)
        reference = wrk(f"http://127.0.0.1:{ref_port}/reference", args.seconds, args.connections)

        # Hits while slow misses wait: other events' fetches stall upstream for 3 s.
        slow = ["team-standup", "board-meeting", "quiet-evening", "conference_2026"]
        alone = wrk(api + VIEW, 2, args.connections)  # the same length, just before
        upstream.set_fault_from({"mode": "timeout", "kind": "event", "seconds": 3})
        with ThreadPoolExecutor(len(slow)) as pool:
            waiting = [pool.submit(requests.get, f"{api}/events-with-subscriptions/{e}/",
                                   timeout=30) for e in slow]
            time.sleep(0.3)  # let the misses start waiting before the load starts
            during = wrk(api + VIEW, 2, args.connections)
            assert all(f.result().status_code == 200 for f in waiting)
        upstream.set_fault(None)

        # Cold misses against a direct client making the same upstream requests.
        upstream.set_latency(args.latency_ms / 1000)
        pages = -(-len(upstream.events[EVENT].subscribers) // 10)
        session = requests.Session()
        auth = {"Authorization": f"Token {upstream.token}"}

        def direct() -> None:
            session.get(f"{base_url}/events/{EVENT}/", headers=auth, timeout=30)
            for page in range(pages):
                session.get(f"{base_url}/event-subscriptions/?event_ids=[{EVENT}]"
                            f"&limit=10&offset={page * 10}", headers=auth, timeout=30)

        def cold() -> None:
            store.delete(*(keys.entry(f"c42:{k}:{EVENT}") for k in ("event", "subscriptions")))
            assert requests.get(api + VIEW, timeout=30).status_code == 200

        direct_ms = timed(direct, 10)
        cold_ms = timed(cold, 20)

        # Burst: N concurrent cold requests, one upstream pass.
        upstream.reset()
        upstream.set_latency(args.latency_ms / 1000)
        store.delete(*(keys.entry(f"c42:{k}:{EVENT}") for k in ("event", "subscriptions")))
        barrier = threading.Barrier(args.burst)

        def one(_: int) -> bytes:
            barrier.wait(30)
            return requests.get(api + VIEW, timeout=30).content

        with ThreadPoolExecutor(args.burst) as pool:
            bodies = set(pool.map(one, range(args.burst)))
        counts = upstream.counters()
    finally:
        upstream.release()
        server.shutdown()
        stop(list(reversed(procs)))

    p50 = statistics.median
    report = {
        "hit": hit,
        "nginx_proxy_cache_hit": nginx_hit,
        "hit_vs_nginx_rps": round(hit["rps"] / nginx_hit["rps"], 3),
        "constant_body_same_server": ceiling,
        "hit_vs_constant_rps": round(hit["rps"] / ceiling["rps"], 3),
        "reference_redis_get": reference,
        "hit_vs_reference_rps": round(hit["rps"] / reference["rps"], 3),
        "api_cpu_ms_per_1000_hits": round(cpu_ms_per_1000, 1),
        "not_modified_304": not_modified,
        "304_vs_200_rps": round((turns[1]["rps"] + turns[2]["rps"])
                                / (turns[0]["rps"] + turns[3]["rps"]), 3),
        "hit_during_4_slow_misses": during,
        "hit_alone_just_before": alone,
        "hit_during_misses_vs_hit_rps": round(during["rps"] / alone["rps"], 3),
        "cold_miss_p50_ms": round(p50(cold_ms), 1),
        "upstream_direct_sequential_p50_ms": round(p50(direct_ms), 1),
        "cold_miss_vs_upstream_direct": round(p50(cold_ms) / p50(direct_ms), 3),
        "burst": {"requests": args.burst, "distinct_bodies": len(bodies),
                  "upstream_requests": counts},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    ok = len(bodies) == 1 and counts == {
        "event": {EVENT: {"200": 1}}, "subscriptions": {EVENT: {"200": pages}}}
    print("burst: one upstream pass" if ok else "burst: MORE THAN ONE UPSTREAM PASS",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
