"""``python -m launcher`` (``make run``): the whole system in the foreground.

Starts a private redis-server (unless REDIS_URL is set), the demo C42 upstream (unless
C42_BASE_URL is set), a Celery worker, Celery beat, Flower and the API; logs where each
listens; Ctrl-C or SIGTERM stops them all. Everything it prints is JSON lines: the
children's logs as they are, anything else they print wrapped in a record.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from launcher.services import (
    celery,
    free_port,
    port_open,
    relay,
    spawn,
    start_api,
    start_redis,
    stop,
    wait_for,
)
from shared.credentials import CREDENTIALS_FILE, flower_basic_auth
from shared.logs import configure_logging
from shared.settings import PROJECT_DIR, SettingsError, load_settings

RUN_DIR = PROJECT_DIR / "run"
PIPE = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
log = logging.getLogger("cachedproxy")


class Stop(Exception):
    pass


def main() -> int:
    env = dict(os.environ)
    configure_logging(env.get("LOG_LEVEL", "INFO"))
    procs: list[subprocess.Popen] = []

    def on_signal(signum: int, _frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    def started(service: str, start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        proc = start()
        procs.append(proc)
        if proc.stdout is not None:
            relay(proc, service)
        return proc

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "REDIS_URL" not in env:
            port = free_port()
            procs.append(start_redis(RUN_DIR / "redis", port))
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            log.info("started", extra={"service": "redis", "url": env["REDIS_URL"],
                                       "data": str(RUN_DIR / "redis")})
        if "C42_BASE_URL" not in env:
            port = free_port()
            env["C42_TOKEN"] = secrets.token_urlsafe(16)
            env["C42_BASE_URL"] = f"http://127.0.0.1:{port}/api/v2"
            demo = started("demo", lambda: spawn(
                [sys.executable, "-m", "demo", "--port", str(port)], env, **PIPE))
            wait_for(lambda: port_open("127.0.0.1", port), 10, "demo upstream", demo)
            log.info("started", extra={"service": "demo upstream", "url": env["C42_BASE_URL"]})
        settings = load_settings(env)
        RUN_DIR.mkdir(exist_ok=True)
        started("worker", lambda: celery(env, "worker", "--hostname", "worker@%h", **PIPE))
        started("beat", lambda: celery(
            env, "beat", "--schedule", str(RUN_DIR / "celerybeat-schedule"), **PIPE))
        _, generated = flower_basic_auth(settings)
        started("flower", lambda: celery(env, "flower", **PIPE))
        started("api", lambda: start_api(env, **PIPE))
        base = f"http://{settings.api.host}:{settings.api.port}"
        log.info("started", extra={"service": "api",
                                   "url": f"{base}/events-with-subscriptions/launch-party/"})
        flower_login = ("FLOWER_BASIC_AUTH" if settings.flower.basic_auth
                        else f"user:password in {CREDENTIALS_FILE}"
                        + (" (generated now)" if generated else ""))
        log.info("started", extra={
            "service": "flower", "url": f"http://{settings.flower.address}:{settings.flower.port}/",
            "login": flower_login})
        log.info("running; Ctrl-C stops everything")
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    log.error("a process exited; stopping",
                              extra={"process": _name(proc), "code": proc.returncode})
                    return 1
            time.sleep(0.5)
    except Stop as why:
        log.info("stopping", extra={"signal": str(why)})
        return 0
    except (RuntimeError, TimeoutError, SettingsError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(list(reversed(procs)))
        log.info("stopped")


def _name(proc: subprocess.Popen) -> str:
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return " ".join(str(a) for a in args[:5])


if __name__ == "__main__":
    sys.exit(main())
