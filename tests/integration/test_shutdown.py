"""Graceful shutdown: SIGTERM lets in-flight requests and fetch tasks finish, bounded."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from launcher.services import celery, free_port
from tests.harness import start_api, stop, wait_for_worker
from tests.integration.test_events_view import VIEW, expected, get


def test_api_finishes_in_flight_requests_on_sigterm(env, worker, demo, tmp_path: Path):
    """An API told to stop answers the miss it is waiting on, then exits."""
    port = free_port()
    with (tmp_path / "api.log").open("w") as out:
        api = start_api({**env, "API_PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT)
    try:
        demo.upstream.set_latency(0.8)  # under the tests' 1.5 s upstream read timeout
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"http://127.0.0.1:{port}{VIEW}/team-standup/")
            assert demo.upstream.wait_for_request("event", "team-standup", timeout=10)
            api.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            r = pending.result(timeout=15)
        assert r.status_code == 200 and r.json() == expected("team-standup")
        assert api.wait(timeout=12) == 0
        assert time.monotonic() - stopping < 12  # the server's graceful timeout is 7 s
    finally:
        stop([api])


def test_worker_finishes_its_fetch_on_sigterm(env, demo, tmp_path: Path, serve_api):
    """A worker told to stop completes the fetches it is running (warm shutdown)."""
    env = {**env, "KEY_PREFIX": "cpstop"}  # its own queues: the fetch is surely its
    name = f"stopping@{socket.gethostname()}"
    with (tmp_path / "worker.log").open("w") as out:
        own = celery(env, "worker", "--concurrency", "2", "--without-mingle",
                     "--without-gossip", "--hostname", name,
                     stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_worker(env, own, hostname=name)
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
        assert "Warm shutdown" in (tmp_path / "worker.log").read_text()
    finally:
        stop([own])
