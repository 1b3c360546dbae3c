"""Graceful shutdown: SIGTERM lets in-flight requests and fetch tasks finish, bounded."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness import Stack
from tests.helpers import VIEW, expected, get


def test_api_finishes_in_flight_requests_on_sigterm(env, worker, demo, tmp_path: Path):
    """An API told to stop answers the miss it is waiting on, then exits."""
    with Stack(env, tmp_path) as stack:
        api_url, api = stack.api(), stack.procs[-1]
        demo.upstream.set_latency(0.8)  # under the tests' 1.5 s upstream read timeout
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"{api_url}{VIEW}/team-standup/")
            assert demo.upstream.wait_for_request("event", "team-standup", timeout=10)
            api.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            r = pending.result(timeout=15)
        assert r.status_code == 200 and r.json() == expected("team-standup")
        assert api.wait(timeout=12) == 0
        assert time.monotonic() - stopping < 12  # the server's graceful timeout is 7 s


def test_worker_finishes_its_fetch_on_sigterm(env, demo, tmp_path: Path, serve_api):
    """A worker told to stop completes the fetches it is running (warm shutdown)."""
    # Its own queues: the fetch is surely its.
    with Stack({**env, "KEY_PREFIX": "cpstop"}, tmp_path) as stack:
        own = stack.worker("stopping")
        api = serve_api(redis={"key_prefix": "cpstop"})
        demo.upstream.set_latency(0.8)  # under the tests' 1.5 s upstream read timeout
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"{api}{VIEW}/quiet-evening/")
            assert demo.upstream.wait_for_request("event", "quiet-evening", timeout=10)
            assert demo.upstream.wait_for_request("subscriptions", "quiet-evening", timeout=10)
            own.send_signal(signal.SIGTERM)
            r = pending.result(timeout=15)
        assert r.status_code == 200 and r.json() == expected("quiet-evening")
        # After its warm shutdown Celery exits 0 or by the SIGTERM it was sent.
        assert own.wait(timeout=15) in (0, -signal.SIGTERM)
        assert "Warm shutdown" in (tmp_path / "stopping.log").read_text()
