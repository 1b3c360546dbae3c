"""What every command-line tool shares: where ``make run``'s system is, and errors as one
JSON line instead of a traceback.

``make run`` writes ``run/env`` (``CACHEDPROXY_RUN_DIR`` names another directory): the
settings that say where its parts are (the private Redis's ``REDIS_URL``, a
``KEY_PREFIX`` it was given), as ``NAME=value`` lines, and removes it when it stops. A tool
takes those where its own environment has none, so ``python -m api.admin entries`` beside
``make run`` finds its Redis. Nothing secret is written there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from shared.config.settings import PROJECT_DIR, SettingsError
from shared.errors import CachedProxyError

RUN_DIR_ENV = "CACHEDPROXY_RUN_DIR"
PID_FILE = "launcher.pid"
WHERE = ("REDIS_URL", "KEY_PREFIX", "CACHEDPROXY_CONFIG", "CACHEDPROXY_CATALOGUE")


def run_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``make run``'s directory: ``CACHEDPROXY_RUN_DIR``, else ./run."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(RUN_DIR_ENV) or PROJECT_DIR / "run")


def env_lines(environ: Mapping[str, str]) -> str:
    """What ``make run`` writes into run/env: where its parts are, never a secret."""
    return "".join(f"{name}={environ[name]}\n" for name in WHERE if environ.get(name))


def mark_running(directory: Path) -> None:
    """``make run`` started: its pid in ``<directory>/launcher.pid``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")


def write_env(directory: Path, environ: Mapping[str, str]) -> Path:
    """Write ``<directory>/env`` (owner-only) with where ``environ`` says things are."""
    path = directory / "env"
    path.touch(mode=0o600)
    path.write_text(env_lines(environ), encoding="utf-8")
    return path


def unmark(directory: Path) -> None:
    """``make run`` stopped: remove run/env and run/launcher.pid, unless another
    ``make run`` has written them since (its pid in the file)."""
    try:
        ours = (directory / PID_FILE).read_text(encoding="utf-8").strip() == str(os.getpid())
    except OSError:
        return
    if ours:
        for name in ("env", PID_FILE):
            (directory / name).unlink(missing_ok=True)


def parse_env(text: str) -> dict[str, str]:
    """The ``NAME=value`` lines of run/env (others are ignored)."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in WHERE:
            found[name] = value
    return found


def environ() -> dict[str, str]:
    """The environment a tool runs in: its own, over what run/env says."""
    try:
        written = parse_env((run_dir() / "env").read_text(encoding="utf-8"))
    except OSError:
        written = {}
    return {**written, **os.environ}


def error_line(exc: BaseException) -> dict[str, Any]:
    """An error as the one JSON line a tool prints: ``{"error": {"code", "message"}}``."""
    if isinstance(exc, CachedProxyError):
        return exc.body()
    if isinstance(exc, SettingsError):
        return {"error": {"code": "bad_configuration", "message": str(exc)}}
    if isinstance(exc, redis.RedisError):
        where = "" if (run_dir() / "env").is_file() else (
            f" (no {run_dir() / 'env'}: is make run running? Else set REDIS_URL)")
        return {"error": {"code": "store_unavailable",
                          "message": f"Redis did not answer: {exc}{where}"}}
    return {"error": {"code": "unavailable", "message": f"{type(exc).__name__}: {exc}"}}


def guarded(main: Callable[[], int]) -> int:
    """Run a tool's ``main``; an error it does not handle is one JSON line on stderr and
    exit code 2 (1 for a service that did not answer), never a traceback; a reader that
    closed the pipe ends it quietly (Python's own advice on SIGPIPE)."""
    try:
        return main()
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CachedProxyError, SettingsError) as exc:
        print(json.dumps(error_line(exc), ensure_ascii=False), file=sys.stderr)
        return 2
    except (redis.RedisError, OSError) as exc:
        print(json.dumps(error_line(exc), ensure_ascii=False), file=sys.stderr)
        return 1
