"""``python -m launcher`` (``make run``): the whole system in the foreground.

Starts a private redis-server (unless REDIS_URL is set), the demo C42 upstream (unless
C42_BASE_URL is set), a Celery worker, Celery beat, Flower and the API; prints where each
listens; Ctrl-C or SIGTERM stops them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from launcher.services import (
    celery,
    free_port,
    port_open,
    spawn,
    start_api,
    start_redis,
    stop,
    wait_for,
)
from shared.credentials import CREDENTIALS_FILE, flower_basic_auth
from shared.settings import PROJECT_DIR, SettingsError, load_settings

RUN_DIR = PROJECT_DIR / "run"


def say(line: str) -> None:
    print(f"cachedproxy: {line}", file=sys.stderr, flush=True)


class Stop(Exception):
    pass


def main() -> int:
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []

    def on_signal(signum: int, _frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    python = sys.executable
    try:
        if "REDIS_URL" not in env:
            port = free_port()
            procs.append(start_redis(RUN_DIR / "redis", port))
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            say(f"redis      {env['REDIS_URL']} (private, data in {RUN_DIR / 'redis'})")
        if "C42_BASE_URL" not in env:
            port = free_port()
            env["C42_TOKEN"] = secrets.token_urlsafe(16)
            env["C42_BASE_URL"] = f"http://127.0.0.1:{port}/api/v2"
            procs.append(spawn([python, "-m", "demo", "--port", str(port)], env))
            wait_for(lambda: port_open("127.0.0.1", port), 10, "demo upstream", procs[-1])
            say(f"upstream   {env['C42_BASE_URL']} (demo)")
        settings = load_settings(env)
        RUN_DIR.mkdir(exist_ok=True)
        procs.append(celery(env, "worker", "--hostname", "worker@%h"))
        procs.append(celery(env, "beat", "--schedule", str(RUN_DIR / "celerybeat-schedule")))
        login, generated = flower_basic_auth(settings)
        procs.append(celery(env, "flower"))
        procs.append(start_api(env))
        base = f"http://{settings.api.host}:{settings.api.port}"
        say(f"api        {base}/events-with-subscriptions/launch-party/")
        say(f"flower     http://{settings.flower.address}:{settings.flower.port}/")
        if generated:
            user, _, password = login[0].partition(":")
            say(f"flower     login {user} / {password} (generated; kept in {CREDENTIALS_FILE})")
        elif not settings.flower.basic_auth:
            say(f"flower     login in {CREDENTIALS_FILE}")
        say("running; Ctrl-C stops everything")
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    say(f"{_name(proc)} exited with {proc.returncode}; stopping")
                    return 1
            time.sleep(0.5)
    except Stop as why:
        say(f"{why}: stopping")
        return 0
    except (RuntimeError, TimeoutError, SettingsError) as exc:
        say(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(list(reversed(procs)))
        say("stopped")


def _name(proc: subprocess.Popen) -> str:
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return " ".join(str(a) for a in args[:5])


if __name__ == "__main__":
    sys.exit(main())
