"""``python -m launcher`` (``make run``): the whole system in the foreground, supervised.

Starts a private redis-server (unless a Redis URL or sentinels are given, in config.ini
or the environment), the demo upstream (for each upstream whose base URL is not given),
a Celery worker, Celery beat, Flower and the API; logs where each listens and writes
run/env, where the command-line tools find its Redis (shared/cli.py). A process that
exits unasked is logged and restarted with back-off (launcher/supervise.py) while the
others keep serving. Ctrl-C or SIGTERM stops them in order: the API first, finishing its
in-flight requests while the worker still runs their fetches, then worker, beat and
Flower, then the demo upstream and Redis. Everything it prints is JSON lines: the
children's logs as they are, anything else wrapped.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from demo.server import demo_env
from launcher.services import (
    api_ready,
    celery,
    free_port,
    kill_group,
    memory_cap,
    port_open,
    relay,
    spawn,
    spawn_api,
    spawn_redis,
    wait_for,
)
from launcher.supervise import after_exit, on_stop_signal
from shared.cli import WHERE, mark_running, run_dir, unmark, write_env
from shared.config.credentials import CREDENTIALS_FILE, flower_basic_auth
from shared.config.settings import SettingsError, given, load_settings
from shared.telemetry.logs import configure_logging
from shared.upstreams.registry import views

PIPE = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
STOP_BUDGET = 10.0  # seconds from a stop request until every process is gone
API_DRAIN = 7.0  # of which the API may take this long to finish its requests
POLL = 0.2
RELOADS = ("api", "worker", "beat")  # the services a SIGHUP is passed to
log = logging.getLogger("cachedproxy")


@dataclass
class Service:
    """One supervised process; ``stage`` orders the stop (lowest stops first)."""

    name: str
    start: Callable[[], subprocess.Popen]
    stage: int
    ready: Callable[[], bool] | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    crashes: int = 0
    restart_at: float | None = None
    relays: list[threading.Thread] = field(default_factory=list)

    def run(self) -> None:
        self.proc = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None
        if self.proc.stdout is not None:
            self.relays.append(relay(self.proc, self.name))


class GaveUp(Exception):
    """A process kept crashing right after its start."""


class Supervisor:
    def __init__(self) -> None:
        self.services: list[Service] = []
        self.stop_requested = threading.Event()
        self.signals: list[str] = []
        self.killed = False
        self._signals_logged = 1  # the first is logged as "stopping"
        self.hangups = 0  # SIGHUPs received; each is passed on by ``watch``
        self._hangups_passed = 0

    def add(self, service: Service, timeout: float = 30) -> Service:
        """Start a service and wait until it is ready (or a stop is requested)."""
        if self.stop_requested.is_set():
            return service
        self.services.append(service)
        service.run()
        ready = service.ready
        if ready is not None:
            wait_for(lambda: self.stop_requested.is_set() or ready(), timeout, service.name,
                     service.proc)
        return service

    def on_signal(self, signum: int, _frame: object) -> None:
        """Never raises: the first signal starts the stop, a second is absorbed, a third
        kills everything at once."""
        step = on_stop_signal(len(self.signals))
        self.signals.append(signal.Signals(signum).name)
        if step.action == "kill":
            self.killed = True
            for service in self.services:
                if service.proc is not None:
                    kill_group(service.proc)
        self.stop_requested.set()

    def on_hangup(self, _signum: int, _frame: object) -> None:
        """SIGHUP: reload; ``watch`` passes it on (nothing is done in a handler)."""
        self.hangups += 1

    def watch(self) -> None:
        """Supervise until a stop is requested; raises GaveUp."""
        while not self.stop_requested.wait(POLL):
            now = time.monotonic()
            for service in self.services:
                self._check(service, now)
            if self._hangups_passed < self.hangups:
                self._hangups_passed = self.hangups
                self._reload()

    def _reload(self) -> None:
        """Pass a SIGHUP to each process that reads config.ini and the catalogue: each
        reads them again, and refuses a broken one, keeping what it runs."""
        told = []
        for service in self.services:
            if service.name in RELOADS and service.proc is not None \
                    and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGHUP)
                told.append(service.name)
        log.info("reloading", extra={"services": told})

    def _check(self, service: Service, now: float) -> None:
        proc = service.proc
        if service.restart_at is not None:
            if now >= service.restart_at:
                service.run()
                log.info("restarted", extra={"service": service.name,
                                             "restarts_in_a_row": service.crashes})
            return
        if proc is None or proc.poll() is None:
            return
        kill_group(proc)  # children the dead leader left behind
        code = proc.returncode
        decision = after_exit(service.crashes, now - service.started_at)
        exited = {"service": service.name, "pid": proc.pid, "exit_code": code,
                  "signal": signal.Signals(-code).name if code < 0 else None}
        if decision is None:
            log.error("process keeps exiting; giving up", extra=exited)
            raise GaveUp(service.name)
        service.crashes = decision.crashes
        service.restart_at = now + decision.delay
        log.error("process exited; restarting", extra={**exited,
                                                        "restart_in_s": decision.delay})

    def stop(self) -> None:
        """Stop stage by stage within STOP_BUDGET; SIGKILL whatever is left at the end."""
        deadline = time.monotonic() + STOP_BUDGET - 0.5
        for stage in sorted({s.stage for s in self.services}):
            procs = [s.proc for s in self.services
                     if s.stage == stage and s.proc is not None and s.proc.poll() is None]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)  # the leader stops its own children
            stage_end = deadline if stage else min(deadline, time.monotonic() + API_DRAIN)
            for proc in procs:
                while proc.poll() is None and time.monotonic() < stage_end and not self.killed:
                    self._note_signals()
                    time.sleep(0.05)
        for service in self.services:
            if service.proc is not None:
                kill_group(service.proc)
                if service.proc.poll() is None:
                    service.proc.wait(5)
        self._note_signals()
        for service in self.services:
            for thread in service.relays:
                thread.join(timeout=1)  # their last lines come before ours

    def _note_signals(self) -> None:
        """Log signals that arrived while stopping (logging is not for signal handlers)."""
        while self._signals_logged < len(self.signals):
            name = self.signals[self._signals_logged]
            self._signals_logged += 1
            if self._signals_logged == 2:
                log.info("already stopping; a third signal kills everything",
                         extra={"signal": name})
            else:
                log.warning("killing every process now", extra={"signal": name})


def _redis(sup: Supervisor, data: Path, port: int, cap: str) -> str:
    """Start the private redis-server; its URL. A restart uses the same port and the same
    append-only file, so every process finds it, and its data, where they were."""
    sup.add(Service("redis", lambda: spawn_redis(data, port, True, *memory_cap(cap)),
                    stage=3, ready=lambda: port_open("127.0.0.1", port)), timeout=10)
    url = f"redis://127.0.0.1:{port}/0"
    log.info("started", extra={"service": "redis", "url": url, "data": str(data),
                               "max_memory": cap})
    return url


def build(sup: Supervisor, env: dict[str, str], run_dir: Path) -> None:
    """Start every service, in order, each ready before the next: a private Redis unless
    one is given (config.ini or the environment), the demo for each upstream whose
    base URL is not given, then the system. run/env says where its parts are."""
    # A Redis URL that was given may hold a password: only the private one is written.
    where = {name: env[name] for name in WHERE if name != "REDIS_URL" and env.get(name)}
    if not given(env, "redis", "url") and not given(env, "redis", "sentinels"):
        env["REDIS_URL"] = where["REDIS_URL"] = _redis(
            sup, run_dir / "redis", free_port(), load_settings(env).redis.max_memory)
    demo_port, token = free_port(), secrets.token_urlsafe(16)
    wiring = demo_env(lambda name: given(env, name, "base_url"), "127.0.0.1", demo_port, token)
    if wiring:  # some upstream is not configured: the demo stands in for it
        env.update(wiring)
        demo = {**env, "DEMO_TOKEN": token}
        sup.add(Service("demo", lambda: spawn(
            [sys.executable, "-m", "demo", "--port", str(demo_port)], demo, **PIPE), stage=2,
            ready=lambda: port_open("127.0.0.1", demo_port)), timeout=10)
        log.info("started", extra={
            "service": "demo upstream", "url": f"http://127.0.0.1:{demo_port}",
            "serves": {k: v for k, v in wiring.items() if k.endswith("_BASE_URL")}})
    settings = load_settings(env)
    run_dir.mkdir(parents=True, exist_ok=True)
    sup.add(Service("worker", lambda: celery(env, "worker", "--hostname", "worker@%h", **PIPE),
                    stage=1))
    sup.add(Service("beat", lambda: celery(
        env, "beat", "--schedule", str(run_dir / "celerybeat-schedule"), **PIPE), stage=1))
    _, generated = flower_basic_auth(settings)
    sup.add(Service("flower", lambda: celery(env, "flower", **PIPE), stage=1))
    sup.add(Service("api", lambda: spawn_api(env, **PIPE), stage=0,
                    ready=lambda: api_ready(env)))
    base = f"http://{settings.api.host}:{settings.api.port}"
    for view in views():
        if not all(p.example for p in view.params):
            continue  # no example to show
        example = view.route.format(**{p.name: p.example for p in view.params})
        log.info("started", extra={"service": "api", "view": view.name,
                                   "url": f"{base}{example}"})
    flower_login = ("FLOWER_BASIC_AUTH" if settings.flower.basic_auth
                    else f"user:password in {CREDENTIALS_FILE}"
                    + (" (generated now)" if generated else ""))
    log.info("started", extra={
        "service": "flower", "url": f"http://{settings.flower.address}:{settings.flower.port}/",
        "login": flower_login})
    log.info("started", extra={"service": "status page", "url": f"{base}/admin/", "login": (
        "ADMIN_TOKEN" if settings.admin.token else "off: set ADMIN_TOKEN to turn it on")})
    log.info("started", extra={"service": "tools' environment",
                               "file": str(write_env(run_dir, where))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=run_dir(),
                        help="where the private Redis keeps its data and run/env is written "
                             "(default: $CACHEDPROXY_RUN_DIR, else ./run)")
    args = parser.parse_args(argv)
    mark_running(args.run_dir)  # run/launcher.pid: kill -HUP "$(cat run/launcher.pid)"
    env = dict(os.environ)
    configure_logging(env.get("LOG_LEVEL", "INFO"))
    sup = Supervisor()
    signal.signal(signal.SIGINT, sup.on_signal)
    signal.signal(signal.SIGTERM, sup.on_signal)
    signal.signal(signal.SIGHUP, sup.on_hangup)
    code = 0
    try:
        build(sup, env, args.run_dir)
        if not sup.stop_requested.is_set():
            log.info("running; Ctrl-C stops everything")
        sup.watch()
    except GaveUp:
        code = 1
    except (RuntimeError, TimeoutError, SettingsError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        code = 1
    if sup.signals:
        log.info("stopping", extra={"signal": sup.signals[0]})
    sup.stop()
    unmark(args.run_dir)  # run/env and run/launcher.pid would point at what is gone
    log.info("stopped", extra={"exit_code": code})
    return code


if __name__ == "__main__":
    sys.exit(main())
