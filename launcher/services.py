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

from shared.config.settings import PROJECT_DIR, load_settings, options
from shared.queue import celery_app

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
        _signal_group(proc, signal.SIGKILL)  # also any child the leader left behind
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


def isolated_env(work_dir: Path, redis_url: str, c42_base_url: str, c42_token: str,
                 **extra: str) -> dict[str, str]:
    """The environment of a system started for a test or a benchmark: the caller's, less
    any cachedproxy option it sets, with an empty config.ini, and these values."""
    config = work_dir / "config.ini"
    config.write_text("")
    ours = {opt.env for opt in options()}
    return {
        **{k: v for k, v in os.environ.items() if k not in ours},
        "CACHEDPROXY_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "C42_BASE_URL": c42_base_url,
        "C42_TOKEN": c42_token,
        **extra,
    }


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_MISSING)
    return binary


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


def start_redis(data_dir: Path, port: int, appendonly: bool = True, *options: str
                ) -> subprocess.Popen:
    """``spawn_redis``, returning once it accepts connections."""
    proc = spawn_redis(data_dir, port, appendonly, *options)
    wait_for(lambda: port_open("127.0.0.1", port), 10, "redis-server", proc)
    return proc
