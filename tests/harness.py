"""Starting the real parts for integration tests and benchmarks: Redis, Celery workers,
the API, each on loopback and free ports, and stopping them again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from demo.server import demo_env
from launcher.services import (
    api_ready,
    kill_group,
    port_open,
    spawn_api,
    spawn_redis,
    wait_for,
)
from shared.config.settings import load_settings, options
from shared.queue import celery_app
from shared.upstreams.registry import CATALOGUE_ENV


def stop(procs: Sequence[subprocess.Popen], timeout: float = 8.0) -> None:
    """SIGTERM each process, wait up to ``timeout`` in all, then SIGKILL their groups.

    Only the leader is asked to stop: a Celery worker or gunicorn stops its own children
    gracefully, which a signal to the whole group would cut short.
    """
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(deadline - time.monotonic(), 0.01))
    for proc in procs:
        kill_group(proc)  # also any child the leader left behind
        if proc.poll() is None:
            proc.wait(5)


def process_tree(pid: int) -> dict[int, str]:
    """Every process below ``pid`` with its command line, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid != parent:
                continue
            try:
                cmd = (Path("/proc") / str(child) / "cmdline").read_bytes()
            except OSError:
                continue
            found[child] = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
            frontier.append(child)
    return found


def start_api(env: dict[str, str], **popen: object) -> subprocess.Popen:
    """``python -m api``, returning once its /healthz answers."""
    proc = spawn_api(env, **popen)
    wait_for(lambda: api_ready(env), 30, "API", proc)
    return proc


def wait_for_worker(env: dict[str, str], proc: subprocess.Popen, timeout: float = 60,
                    hostname: str | None = None) -> None:
    """Return once the worker ``hostname`` (any worker, if None) on this deployment's
    broker answers a ping."""
    control = celery_app(load_settings(env)).control
    destination = [hostname] if hostname else None

    def answered() -> bool:
        replies = control.ping(destination=destination, timeout=0.3)
        return any(hostname is None or hostname in reply for reply in replies)

    wait_for(answered, timeout, "celery worker", proc)


def isolated_env(work_dir: Path, redis_url: str, demo_url: str, token: str,
                 **extra: str) -> dict[str, str]:
    """The environment of a system started for a test or a benchmark: the caller's, less
    any cachedproxy option it sets (the catalogue's path too), with an empty config.ini,
    every upstream pointed at the demo upstream serving ``demo_url``, and ``extra``."""
    config = work_dir / "config.ini"
    config.write_text("")
    ours = {opt.env for opt in options()} | {CATALOGUE_ENV}
    demo = urlsplit(demo_url)
    return {
        **{k: v for k, v in os.environ.items() if k not in ours},
        "CACHEDPROXY_CONFIG": str(config),
        "REDIS_URL": redis_url,
        **demo_env({}, demo.hostname or "127.0.0.1", demo.port or 80, token),
        **extra,
    }


def start_redis(data_dir: Path, port: int, appendonly: bool = True, *options: str
                ) -> subprocess.Popen:
    """``spawn_redis``, returning once it accepts connections."""
    proc = spawn_redis(data_dir, port, appendonly, *options)
    wait_for(lambda: port_open("127.0.0.1", port), 10, "redis-server", proc)
    return proc
