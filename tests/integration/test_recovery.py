"""Recovery from infrastructure faults: a prefork worker's process killed mid-fetch, Redis
restarting, an API server process killed."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from shared.config.settings import load_settings
from shared.queue import FETCH_TASK, celery_app
from tests.harness import Stack, wait_for_worker
from tests.helpers import VIEW, eventually, expected, get


def children(pid: int) -> list[int]:
    """The direct children of a process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_prefork_process_fails_its_flight_at_once(env, demo, tmp_path: Path, sig):
    """With ``WORKER_POOL=prefork``: waiters on a fetch whose pool process dies, whatever
    killed it, get 503 fetch_failed now, not after their timeout; the next request
    fetches again. (On threads the worker is one process: test_launcher kills it.)"""
    with Stack(env, tmp_path) as stack:
        stack.redis_server()
        worker = stack.worker("prefork", WORKER_POOL="prefork")
        api = stack.api()
        demo.upstream.set_latency(8)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"{api}{VIEW}/team-standup/")
            assert demo.upstream.wait_for_request("event", "team-standup", timeout=10)
            killed_at = time.monotonic()
            for child in children(worker.pid):
                os.kill(child, sig)
            r = pending.result(timeout=15)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "fetch_failed"
        assert time.monotonic() - killed_at < 5  # well before the 8 s upstream or 10 s wait
        demo.upstream.set_latency(0)
        assert get(f"{api}{VIEW}/team-standup/").json() == expected("team-standup")


@pytest.fixture
def own_redis(tmp_path: Path, env: dict[str, str]) -> Iterator[Stack]:
    """A Redis with AOF that this test may stop and start again, and a worker using it."""
    with Stack(env, tmp_path) as stack:
        stack.redis_server(appendonly=True)
        stack.worker("restart", concurrency=1)
        yield stack


def test_redis_down_serves_recent_views_and_restart_loses_nothing(own_redis, settings, demo):
    """While Redis is down the API answers the view it served from its own copy (the
    same body, Cache-Status saying so) and 503 store_unavailable for a view it never
    served; once Redis is back, without a restart, cached data is still there (no
    upstream call) and misses are fetched again."""
    url = own_redis.env["REDIS_URL"]
    server = threaded_wsgi_server(
        app_from_settings(settings.replace(redis={"url": url, "socket_timeout": 1.0})),
        "127.0.0.1", 0,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        served = requests.get(f"{api}{VIEW}/launch-party/", timeout=10)
        assert served.json() == expected("launch-party")
        own_redis.stop_redis()
        r = requests.get(f"{api}{VIEW}/launch-party/", timeout=10)
        assert r.status_code == 200 and r.content == served.content
        assert r.headers["ETag"] == served.headers["ETag"]
        assert r.headers["Cache-Status"].endswith("; detail=store-unavailable")
        r = requests.get(f"{api}{VIEW}/team-standup/", timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        own_redis.start_redis_again()
        calls = demo.upstream.counters()
        eventually(lambda: "detail" not in requests.get(
            f"{api}{VIEW}/launch-party/", timeout=10).headers["Cache-Status"], 5,
            "reads from Redis again")
        assert get(f"{api}{VIEW}/launch-party/").json() == expected("launch-party")
        assert demo.upstream.counters() == calls
        assert get(f"{api}{VIEW}/team-standup/").json() == expected("team-standup")
    finally:
        server.shutdown()
        server.server_close()


def test_worker_outlives_losing_the_broker_with_tasks_reserved(own_redis, demo):
    """Redis goes away for 6 s while the worker has a fetch running and another reserved
    (taken from the queue, not yet started): the worker does not exit; it reconnects
    within a second or two of Redis's return (kombu's own intervals, 2 s growing by 2 s,
    would wait until 12 s) and runs tasks again."""
    own, worker = own_redis.env, own_redis.procs[-1]
    sender = celery_app(load_settings(own))
    demo.upstream.set_latency(2)
    for event_id in ("launch-party", "team-standup", "board-meeting"):
        sender.send_task(FETCH_TASK, (f"c42:event:{event_id}", secrets.token_hex(8)))
    assert demo.upstream.wait_for_request("event", "launch-party", timeout=10)
    log = own_redis.logs / "restart.log"
    own_redis.stop_redis()
    eventually(lambda: "Connection to broker lost" in log.read_text(), 10,
               "the worker notices Redis is gone")
    time.sleep(6)  # the outage itself: the worker's reconnection attempts fail meanwhile
    own_redis.start_redis_again()
    back = time.monotonic()
    demo.upstream.set_latency(0)
    wait_for_worker(own, worker, timeout=20)
    assert time.monotonic() - back < 4
    sender.send_task(FETCH_TASK, ("c42:event:quiet-evening", secrets.token_hex(8)))
    assert demo.upstream.wait_for_request("event", "quiet-evening", timeout=20)
    assert worker.poll() is None, log.read_text()[-2000:]


def test_api_outlives_a_killed_server_process(env, worker, demo, tmp_path: Path):
    """One of the API's two server processes SIGKILLed: requests go on being answered by
    the other (a connection the dying or the starting process had taken may be reset,
    nothing worse), the server starts a new process in its place, and every request is
    answered again."""
    with Stack(env, tmp_path) as stack:
        url = f"{stack.api(API_WORKERS='2')}{VIEW}/team-standup/"
        api = stack.procs[-1]
        assert get(url).json() == expected("team-standup")
        before = children(api.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)

        def answer() -> int | str:
            try:
                return requests.get(url, timeout=10).status_code
            except requests.ConnectionError:
                return "reset"

        seen = []
        until = time.monotonic() + 2  # two seconds of requests across the replacement
        while time.monotonic() < until:
            seen.append(answer())
        assert set(seen) <= {200, "reset"}, set(seen)
        assert seen.count(200) >= 0.9 * len(seen), (seen.count("reset"), len(seen))

        def replaced() -> bool:
            now = children(api.pid)
            return len(now) == 2 and before[0] not in now

        eventually(replaced, 10, "a new server process in place of the killed one")
        eventually(lambda: [answer() for _ in range(20)] == [200] * 20, 10,
                   "every request answered again")
        assert get(url).json() == expected("team-standup") and api.poll() is None

