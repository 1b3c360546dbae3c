"""Starting the real parts for integration tests and benchmarks: Redis, Celery workers,
the API, each on loopback and free ports, and stopping them again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from demo.server import DemoUpstream, demo_env
from launcher.services import (
    api_ready,
    celery,
    free_port,
    http_ok,
    kill_group,
    port_open,
    redis_server_binary,
    spawn,
    spawn_api,
    spawn_redis,
    wait_for,
)
from shared.config.settings import load_settings, options
from shared.queue import celery_app
from shared.upstreams.registry import CATALOGUE_ENV


@dataclass
class Demo:
    """The demo upstream served in this process, and its API's base URL."""

    upstream: DemoUpstream
    base_url: str


def stop(procs: Sequence[subprocess.Popen], timeout: float = 8.0) -> None:
    """SIGTERM each process, wait up to ``timeout`` in all, then SIGKILL their groups.

    Only the leader is asked to stop: a Celery worker or granian stops its own children
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
        try:
            replies = control.ping(destination=destination, timeout=0.3)
        except (redis.ConnectionError, OSError):  # the broker is (re)starting
            return False
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
        **demo_env(lambda name: False, demo.hostname or "127.0.0.1", demo.port or 80, token),
        **extra,
    }


def start_redis(data_dir: Path, port: int, appendonly: bool = True, *options: str
                ) -> subprocess.Popen:
    """``spawn_redis``, returning once it accepts connections."""
    proc = spawn_redis(data_dir, port, appendonly, *options)
    wait_for(lambda: port_open("127.0.0.1", port), 10, "redis-server", proc)
    return proc


class Stack:
    """The processes of one system under test, started on demand and stopped together,
    last started first: a private redis-server, Celery workers and beats, the API as
    ``python -m api`` serves it, Flower. Each runs with ``env`` (and the changes given
    to its start, environment names) and writes its output to ``<logs>/<name>.log``.

        with Stack(env, tmp_path) as stack:
            stack.redis_server("--maxmemory", "10mb")
            stack.worker()
            api = stack.api(API_MISS_WAIT_TIMEOUT="2")
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = dict(env)
        self.logs = logs
        self.procs: list[subprocess.Popen] = []
        self._redis_args: tuple = ()
        self._redis: subprocess.Popen | None = None
        logs.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def redis_server(self, *options: str, appendonly: bool = False, port: int | None = None) -> str:
        """A redis-server of this stack's own (``options``: more ``--name value``
        pairs), with its data in ``<logs>/redis``; every process started after it uses
        it. Returns its URL."""
        port = port or free_port()
        self._redis_args = (self.logs / "redis", port, appendonly, *options)
        self._redis = self._started(start_redis(*self._redis_args))
        self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        return self.env["REDIS_URL"]

    def stop_redis(self) -> None:
        """Stop the stack's redis-server; its data stays where it was."""
        assert self._redis is not None, "no redis_server() to stop"
        self.stop(self._redis)

    def start_redis_again(self) -> None:
        """Start the stack's redis-server again, on its port and its data."""
        self._redis = start_redis(*self._redis_args)
        self.procs.insert(0, self._redis)  # stopped last, as first started

    @property
    def store(self) -> redis.Redis:
        """A client of the stack's Redis, answering str."""
        return redis.Redis.from_url(self.env["REDIS_URL"], decode_responses=True)

    def worker(self, name: str = "worker", concurrency: int = 2, **env: str
               ) -> subprocess.Popen:
        """``celery -A worker worker`` as ``<name>@<host>``, once it answers a ping."""
        own = {**self.env, **env}
        proc = self._spawn(name, celery, own, "worker", "--concurrency", str(concurrency),
                           "--without-mingle", "--without-gossip", "--hostname", f"{name}@%h")
        wait_for_worker(own, proc, hostname=f"{name}@{socket.gethostname()}")
        return proc

    def beat(self, name: str = "beat", **env: str) -> subprocess.Popen:
        """``celery -A worker beat`` with its schedule file in the logs folder."""
        return self._spawn(name, celery, {**self.env, **env}, "beat", "--schedule",
                           str(self.logs / f"{name}-schedule"))

    def api(self, name: str = "api", **env: str) -> str:
        """``python -m api`` on a free port (unless API_PORT is given), once /healthz
        answers; its base URL."""
        own = {**self.env, "API_PORT": str(free_port()), **env}
        with (self.logs / f"{name}.log").open("w") as out:
            self._started(start_api(own, stdout=out, stderr=subprocess.STDOUT))
        return f"http://127.0.0.1:{own['API_PORT']}"

    def flower(self, name: str = "flower", **env: str) -> str:
        """``celery -A worker flower`` on a free port, once its health check answers;
        its base URL."""
        port = free_port()
        proc = self._spawn(name, celery, {**self.env, "FLOWER_PORT": str(port), **env},
                           "flower")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/healthcheck"), 30, "flower", proc)
        return url

    def stop(self, *procs: subprocess.Popen, timeout: float = 8.0) -> None:
        """Stop these processes (all of the stack's, last started first, if none);
        whatever is still running after ``timeout`` seconds is killed."""
        chosen = list(procs) or list(reversed(self.procs))
        try:
            stop(chosen, timeout)
        finally:
            self.procs = [p for p in self.procs if p not in chosen]

    def _spawn(self, name: str, start: Callable[..., subprocess.Popen], *args: object
               ) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as out:
            return self._started(start(*args, stdout=out, stderr=subprocess.STDOUT))

    def _started(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc


def _local(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)


class SentinelStand:
    """A Redis master, one replica and three sentinels on loopback, as a highly available
    Redis is deployed: the sentinels agree (quorum 2) that the master is down after
    ``down_after_ms`` and promote the replica. For tests and benchmarks of failover."""

    MASTER = "mymaster"

    def __init__(self, work_dir: Path, down_after_ms: int = 1000) -> None:
        self.work_dir = work_dir
        self.down_after_ms = down_after_ms
        self.nodes: dict[int, subprocess.Popen] = {}  # port -> redis-server
        self.sentinels: dict[int, subprocess.Popen] = {}  # port -> sentinel

    def start(self) -> SentinelStand:
        master, replica = free_port(), free_port()
        self.start_node(master)
        self.start_node(replica, "--replicaof", "127.0.0.1", str(master))
        for _ in range(3):
            port = free_port()
            directory = self.work_dir / f"sentinel-{port}"
            directory.mkdir(parents=True)
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"logfile {directory / 'sentinel.log'}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.MASTER} 10000\n"
            )
            self.sentinels[port] = spawn([redis_server_binary(), str(conf), "--sentinel"],
                                         stdout=subprocess.DEVNULL)
            wait_for(lambda p=port: port_open("127.0.0.1", p), 10, "redis sentinel",
                     self.sentinels[port])
        wait_for(lambda: self.in_sync(master), 30, "replica in sync and known to sentinels")
        return self

    def start_node(self, port: int, *options: str) -> None:
        proc = spawn_redis(self.work_dir / f"redis-{port}", port, False, *options)
        wait_for(lambda: port_open("127.0.0.1", port), 10, "redis-server", proc)
        self.nodes[port] = proc

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for this stand."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinels)

    def master(self) -> int:
        """The master's port as every sentinel names it (0: they do not agree yet)."""
        named = set()
        for port in self.sentinels:
            try:
                with _local(port) as sentinel:
                    address = sentinel.sentinel_get_master_addr_by_name(self.MASTER)
            except redis.RedisError:
                return 0
            named.add(int(address[1]) if address else 0)
        return named.pop() if len(named) == 1 else 0

    def in_sync(self, master: int) -> bool:
        """``master`` is the master of every sentinel, has a replica online, and every
        sentinel knows that replica (so it can promote it)."""
        if self.master() != master:
            return False
        try:
            with _local(master) as node:
                info = node.info("replication")
            if not any(isinstance(v, dict) and v.get("state") == "online"
                       for k, v in info.items() if k.startswith("slave")):
                return False
            for port in self.sentinels:
                with _local(port) as sentinel:
                    if not sentinel.sentinel_slaves(self.MASTER):
                        return False
            return True
        except redis.RedisError:
            return False

    def kill_master(self) -> int:
        """SIGKILL the master's process; its port."""
        port = self.master()
        self.nodes.pop(port).kill()
        return port

    def wait_failover(self, old: int, timeout: float = 30) -> int:
        """The promoted replica's port, once every sentinel names it."""
        return self.agreed_master(old, timeout, "failover")

    def agreed_master(self, other_than: int, timeout: float, what: str) -> int:
        """The master every sentinel names, once they agree on one other than
        ``other_than`` (a sentinel that does not answer in time is asked again)."""
        named = [0]

        def agreed() -> bool:
            named[0] = self.master()
            return named[0] not in (0, other_than)

        wait_for(agreed, timeout, what)
        return named[0]

    def rejoin(self, port: int) -> None:
        """Start the killed node again as a replica of the new master (as an operator
        brings a failed host back); returns once it is in sync."""
        master = self.agreed_master(port, 30, "sentinels agreeing on the new master")
        self.start_node(port, "--replicaof", "127.0.0.1", str(master))
        wait_for(lambda: self.in_sync(master), 30, "old master rejoined as replica")

    def stop(self) -> None:
        stop([*self.sentinels.values(), *self.nodes.values()])
