"""``python -m benchmarks.answers``: every kind of answer against the 200 hit in the same
run, Varnish and nginx in front of the same API as references, and a flood of unknown ids.

- Answers: each kind on one URL with ``wrk -t1 -c64``, in turns with the 200 hit over
  ``--rounds`` rounds (hit, kind, kind, hit, ...), so neither gains from running first;
  req/s, p99 (the median and the worst of the rounds), the serving API process's CPU
  per 1,000 answers, and req/s as a ratio to the hits of the same rounds: 304
  (If-None-Match), 404 remembered (an id upstream does not have), 400 (a malformed id),
  404 (no such route), 401 (no key), 429 (a client whose window is full, on a second API
  process with ``API_RATE_LIMIT=1/hour``).
- References: Varnish (Debian's ``varnish``, malloc storage) and nginx ``proxy_cache``
  (one worker) in front of the API, caching what it answers for 10 minutes: the hit,
  the remembered 404, and 500 different views (wrk's Lua takes each request's view in
  turn), against the API on the same URLs.
- Flood: one key asks for ``--flood`` distinct unknown ids, 16 at a time, with
  ``API_MISS_RATE_LIMIT=5/second``, while another key reads a cached view with wrk: the
  upstream requests the flood caused, how it was answered, and the other client's p99
  against the same load just before. Then ``--paths`` distinct paths (unknown ids,
  malformed ids, unknown routes, in turn): the API's RSS before and after.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.__main__ import cpu_seconds, parse_wrk, start_nginx
from benchmarks.processes import rss_mb
from demo.server import API, DemoUpstream, make_demo_server
from launcher.services import celery, free_port, port_open, wait_for
from shared.policy.access import new_key
from tests.harness import isolated_env, start_api, start_redis, stop, wait_for_worker

VIEWS = "/events-with-subscriptions"
EVENT = "launch-party"
MANY = 500  # different views read in turn, for the many-views comparison

VCL = """vcl 4.1;
backend api {{ .host = "127.0.0.1"; .port = "{port}"; }}
sub vcl_backend_fetch {{ set bereq.http.Authorization = "Bearer {key}"; }}
sub vcl_backend_response {{ set beresp.ttl = 10m; set beresp.grace = 0s; }}
"""

IN_TURN = """
local i = 0
request = function()
  i = i % {count} + 1
  return wrk.format(nil, "{prefix}" .. i .. "/")
end
"""

DISTINCT = """
local i = 0
local offset = 0
init = function(args) offset = tonumber(args[1]) end
request = function()
  i = i + 1
  local n = offset + i
  if n % 3 == 0 then return wrk.format(nil, "{views}/flood-path-" .. n .. "/") end
  if n % 3 == 1 then return wrk.format(nil, "/no/such/route/" .. n) end
  return wrk.format(nil, "{views}/bad." .. n .. "/")
end
"""


def start_varnish(work: Path, api_port: int, key: str) -> tuple[subprocess.Popen, int]:
    """varnishd in the foreground in front of the API, on a free port."""
    port = free_port()
    vcl = work / "bench.vcl"
    vcl.write_text(VCL.format(port=api_port, key=key))
    proc = subprocess.Popen(
        ["varnishd", "-F", "-j", "none", "-n", str(work / "varnish"), "-f", str(vcl),
         "-a", f"127.0.0.1:{port}", "-s", "malloc,64m", "-T", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open("127.0.0.1", port), 20, "varnish", proc)
    return proc, port


def wrk_any(url: str, seconds: int, connections: int, *headers: str,
            script: Path | None = None, args: tuple[str, ...] = ()) -> dict[str, float]:
    """``wrk`` where any status is expected (errors are what some kinds measure)."""
    extra = ["-s", str(script)] if script else []
    sent = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *sent, *extra, url,
         *(["--", *args] if args else [])],
        capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.answers", description=__doc__)
    parser.add_argument("--seconds", type=int, default=4, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--paths", type=int, default=100_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cachedproxy-answers-"))
    procs: list[subprocess.Popen] = []
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    for n in range(1, MANY + 1):
        upstream.put_event(f"bench-{n}", f"Bench {n}", ["Ada", "Grace"])
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}{API}"
    reader_key, reader_line = new_key("reader")
    flooder_key, flooder_line = new_key("flooder")
    try:
        redis_port = free_port()
        procs.append(start_redis(work / "redis", redis_port, appendonly=False))
        env = isolated_env(work, f"redis://127.0.0.1:{redis_port}/0", base_url, upstream.token,
                           API_KEYS=f"{reader_line},{flooder_line}", API_REQUIRE_KEYS="on")
        logs = (work / "processes.log").open("w")
        quiet = {"stdout": logs, "stderr": subprocess.STDOUT}
        worker = celery(env, "worker", "--without-mingle", "--without-gossip", **quiet)
        procs.append(worker)
        wait_for_worker(env, worker)
        # The API measured; one with a full window for the 429s; one guarding its misses
        # for the flood (the readers' own first reads would be limited there too).
        api_port, limited_port, guarded_port = free_port(), free_port(), free_port()
        api_proc = start_api({**env, "API_PORT": str(api_port)}, **quiet)
        procs.append(api_proc)
        limited_proc = start_api({**env, "API_PORT": str(limited_port),
                                  "API_RATE_LIMIT": "1/hour"}, **quiet)
        procs.append(limited_proc)
        guarded_proc = start_api({**env, "API_PORT": str(guarded_port),
                                  "API_MISS_RATE_LIMIT": "5/second"}, **quiet)
        procs.append(guarded_proc)
        api, limited = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{limited_port}"
        guarded = f"http://127.0.0.1:{guarded_port}"
        key = f"Authorization: Bearer {reader_key}"
        auth = {"Authorization": f"Bearer {reader_key}"}
        view, unknown = f"{VIEWS}/{EVENT}/", f"{VIEWS}/no-such-event/"
        with requests.Session() as session:
            for path in [view, unknown, *(f"{VIEWS}/bench-{n}/" for n in range(1, MANY + 1))]:
                session.get(api + path, headers=auth, timeout=30)
            etag = session.get(api + view, headers=auth, timeout=30).headers["ETag"]
            assert session.get(api + unknown, headers=auth, timeout=30).status_code == 404
            session.get(limited + view, headers=auth, timeout=30)
            assert session.get(limited + view, headers=auth, timeout=30).status_code == 429
            assert session.get(guarded + view, headers=auth, timeout=30).status_code == 200

        varnish, varnish_port = start_varnish(work, api_port, reader_key)
        procs.append(varnish)
        nginx, nginx_port = start_nginx(work, api_port,
                                        f'proxy_set_header Authorization "Bearer {reader_key}";')
        procs.append(nginx)
        refs = {"varnish": f"http://127.0.0.1:{varnish_port}",
                "nginx": f"http://127.0.0.1:{nginx_port}"}
        for ref in refs.values():
            for path in (view, unknown):
                requests.get(ref + path, timeout=30)
        many = work / "many.lua"
        many.write_text(IN_TURN.format(count=MANY, prefix=f"{VIEWS}/bench-"))
        for ref in refs.values():
            wrk_any(ref + "/", 2, args.connections, script=many)  # fill their caches

        kinds: dict[str, tuple[str, tuple[str, ...], int, int]] = {
            "304": (api + view, (key, f"If-None-Match: {etag}"), 304, api_proc.pid),
            "404_remembered": (api + unknown, (key,), 404, api_proc.pid),
            "400_malformed_id": (api + f"{VIEWS}/bad.id/", (key,), 400, api_proc.pid),
            "404_no_route": (api + "/no/such/route", (key,), 404, api_proc.pid),
            "401_no_key": (api + view, (), 401, api_proc.pid),
            "429_window_full": (limited + view, (key,), 429, limited_proc.pid),
        }
        for url, headers, status, _ in kinds.values():
            got = requests.get(url, headers=dict(h.split(": ", 1) for h in headers), timeout=10)
            assert got.status_code == status, (url, got.status_code, got.text)
        wrk_any(api + view, 2, args.connections, key)  # warm-up
        runs: dict[str, list[dict[str, float]]] = {"200_hit": []}
        hits_by_kind: dict[str, list[float]] = {}

        def measure(url: str, pid: int, *headers: str) -> dict[str, float]:
            before = cpu_seconds(pid)  # of the API process serving ``url``
            result = wrk_any(url, args.seconds, args.connections, *headers)
            result["cpu_ms_per_1000"] = round((cpu_seconds(pid) - before) * 1e6
                                              / max(result["requests"], 1), 1)
            return result

        for round_ in range(args.rounds):
            for name, (url, headers, _, pid) in kinds.items():
                order = [True, False] if round_ % 2 == 0 else [False, True]
                for is_hit in order:
                    result = (measure(api + view, api_proc.pid, key) if is_hit
                              else measure(url, pid, *headers))
                    if is_hit:
                        runs["200_hit"].append(result)
                        hits_by_kind.setdefault(name, []).append(result["rps"])
                    else:
                        runs.setdefault(name, []).append(result)

        references = {}
        for name, ref in refs.items():
            references[f"{name}_hit"] = wrk_any(ref + view, args.seconds, args.connections)
            references[f"{name}_404"] = wrk_any(ref + unknown, args.seconds, args.connections)
            references[f"{name}_500_views"] = wrk_any(ref + "/", args.seconds, args.connections,
                                                      script=many)
        references["api_500_views"] = wrk_any(api + "/", args.seconds, args.connections, key,
                                              script=many)

        # Flood: distinct unknown ids from one key while another reads a cached view.
        flooder = {"Authorization": f"Bearer {flooder_key}"}
        span = max(args.seconds * 2, 8)
        alone = wrk_any(guarded + view, span, args.connections, key)
        before = upstream.total_requests()
        answers: Counter[int] = Counter()
        during: dict[str, float] = {}
        load = threading.Thread(target=lambda: during.update(
            wrk_any(guarded + view, span, args.connections, key)))
        load.start()
        started = time.monotonic()

        def ask(n: int) -> int:
            return requests.get(f"{guarded}{VIEWS}/flood-{n}/", headers=flooder,
                                timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            answers.update(pool.map(ask, range(args.flood)))
        flood_seconds = time.monotonic() - started
        load.join()
        caused = upstream.total_requests() - before

        # Memory: distinct paths of every refused kind.
        rss_before = rss_mb(guarded_proc.pid)
        distinct = work / "distinct.lua"
        distinct.write_text(DISTINCT.format(views=VIEWS))
        sent = 0
        while sent < args.paths:
            sent += int(wrk_any(guarded + "/", 5, args.connections, key, script=distinct,
                                args=(str(sent),))["requests"])
        rss_after = rss_mb(guarded_proc.pid)
    finally:
        upstream.release()
        server.shutdown()
        stop(list(reversed(procs)))

    mean, median = statistics.fmean, statistics.median
    report: dict[str, object] = {}
    for name, results in runs.items():
        rps = mean(r["rps"] for r in results)
        report[name] = {
            "rps": round(rps),
            "p99_ms_median": median(r["p99_ms"] for r in results),
            "p99_ms_max": max(r["p99_ms"] for r in results),
            "cpu_ms_per_1000": round(mean(r["cpu_ms_per_1000"] for r in results), 1)}
        if name != "200_hit":
            report[name]["vs_200_hit_rps"] = round(rps / mean(hits_by_kind[name]), 3)  # type: ignore
    hit_rps = mean(r["rps"] for r in runs["200_hit"])
    report["references"] = references
    for name in refs:
        report[f"hit_vs_{name}_rps"] = round(hit_rps / references[f"{name}_hit"]["rps"], 3)
        report[f"404_vs_{name}_404_rps"] = round(
            report["404_remembered"]["rps"] / references[f"{name}_404"]["rps"], 3)  # type: ignore
        report[f"500_views_vs_{name}_rps"] = round(
            references["api_500_views"]["rps"] / references[f"{name}_500_views"]["rps"], 3)
    report["flood"] = {
        "unknown_ids": args.flood, "seconds": round(flood_seconds, 1),
        "answers": dict(answers), "upstream_requests_caused": caused,
        "other_client_p99_ms": during.get("p99_ms"), "other_client_alone_p99_ms":
            alone.get("p99_ms"), "other_client_rps": during.get("rps"),
        "other_client_alone_rps": alone.get("rps"),
        "other_client_non_2xx_3xx": during.get("non_2xx_3xx", 0)}
    report["distinct_paths"] = {"paths": sent, "api_rss_mb_before": rss_before,
                                "api_rss_mb_after": rss_after,
                                "after_vs_before": round(rss_after / rss_before, 3)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
