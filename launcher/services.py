"""Start and stop local processes: a private redis-server, waits for ports, process groups."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from shared.config.settings import PROJECT_DIR, load_settings

REDIS_MISSING = (
    "redis-server was not found: install it (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or set REDIS_URL to a Redis 7 you run."
)  # scripts/ensure-command says the same before make run and make test get here


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, timeout: float, what: str, proc: subprocess.Popen | None = None
             ) -> None:
    """Poll ``predicate`` until it is true; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {proc.returncode}")
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not ready after {timeout:g} s")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def spawn(argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: object
          ) -> subprocess.Popen:
    """Start a process in its own process group, so stopping it stops its children too."""
    return subprocess.Popen(list(argv), env=env, start_new_session=True, **kwargs)  # type: ignore[call-overload]


def relay(proc: subprocess.Popen, service: str) -> threading.Thread:
    """Copy a child's output to our stderr as JSON lines: its JSON lines as they are,
    anything else (a library printing outside logging) wrapped in a record of its own."""

    def run() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.strip():
                continue
            if not (line.startswith("{") and _is_json(line)):
                line = json.dumps({
                    "timestamp": datetime.now(UTC).isoformat(), "level": "INFO",
                    "logger": service, "event": line,
                }, ensure_ascii=False)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    thread = threading.Thread(target=run, name=f"relay-{service}", daemon=True)
    thread.start()
    return thread


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process's whole group: whatever its leader left behind goes too."""
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def celery(env: dict[str, str], *args: str, **popen: object) -> subprocess.Popen:
    """``celery -A worker <args>`` from the project directory."""
    return spawn([sys.executable, "-m", "celery", "-A", "worker", "--quiet", *args], env,
                 cwd=PROJECT_DIR,
                 **popen)


def spawn_api(env: dict[str, str], **popen: object) -> subprocess.Popen:
    """``python -m api`` from the project directory."""
    return spawn([sys.executable, "-m", "api"], env, cwd=PROJECT_DIR, **popen)


def api_ready(env: dict[str, str]) -> bool:
    settings = load_settings(env)
    return http_ok(f"http://{settings.api.host}:{settings.api.port}/healthz")


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_MISSING)
    return binary


def memory_cap(max_memory: str) -> tuple[str, ...]:
    """redis-server options capping memory so that only cache entries are evicted:
    volatile-lru evicts only keys with a TTL, and only cache entries have one (the
    queues, schedule, locks and everything else never expire; docs/OPERATIONS.md, "Memory")."""
    return ("--maxmemory", max_memory, "--maxmemory-policy", "volatile-lru")


def spawn_redis(data_dir: Path, port: int, appendonly: bool = True, *options: str
                ) -> subprocess.Popen:
    """A private redis-server on loopback (``options``: more ``--name value`` pairs)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return spawn(
        [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--save", "", "--appendonly", "yes" if appendonly else "no",
            "--logfile", str(data_dir / "redis.log"), "--daemonize", "no", *options,
        ],
        stdout=subprocess.DEVNULL,
    )
