"""``python -m api``: serve the API with granian in ``api.workers`` processes.

granian's Rust HTTP server hands each request to the process's event loop, where a hit
from the process's copy is answered in microseconds; every other request runs on one of
``api.threads`` threads, so misses waiting on upstream never hold up hits
(api/bridge.py). See docs/BENCHMARKS.md for the measurements behind the choice.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from api.shelf import ENV, Shelf
from shared.config.live import process_environ, process_settings, set_command_line
from shared.config.reload import files_refused
from shared.config.settings import Settings, SettingsError, load_settings
from shared.policy.access import open_off_loopback
from shared.telemetry.logs import configure_logging, refuse_to_start
from shared.upstreams.registry import catalogue_path, replace_file

log = logging.getLogger("cachedproxy")

# Seconds a stopping server gives in-flight requests; within make run's stop budget.
GRACEFUL_TIMEOUT = 7
CONNECTIONS = 1000  # open connections per process; more wait in the listen backlog
# A request's head (request line and headers) past this is refused with 431, and one not
# received within HEADER_TIMEOUT_MS is dropped (a client that trickles its headers).
MAX_HEAD_BYTES = 64 * 1024
HEADER_TIMEOUT_MS = 10_000
API = "api.__main__:load_api"


def load_api() -> Any:
    """The app of one server process (granian calls it in each, after the fork)."""
    from api.app import bridged

    live = process_settings()  # one per server process, following Consul
    return bridged(live.get(), live.get)


def _shelf_dir() -> None:
    """The directory of the copies the server's processes share (api/shelf.py), made
    before they start, unless one is given."""
    if ENV not in os.environ:
        path = tempfile.mkdtemp(prefix="cachedproxy-shelf-")
        os.environ[ENV] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    Shelf.prepare(Path(os.environ[ENV]))


def _metrics_dir() -> None:
    """prometheus_client's multiprocess mode, in a fresh directory unless one is given."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="cachedproxy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)


def _log_config(level: str) -> dict[str, Any]:
    """granian's own records (start, stop, a worker lost) as the API's JSON lines."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.telemetry.logs.json_formatter"}},
        "filters": {"context": {"()": "shared.telemetry.logs.ContextFilter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json",
                       "filters": ["context"]}
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "_granian": {"level": level.upper(), "handlers": [], "propagate": True},
            "granian.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


class _Server(Server):  # type: ignore[misc, valid-type]
    """granian's server, whose SIGHUP (start new server processes, then stop the old:
    no request is dropped) first checks config.ini and the catalogue file: with a broken
    one, the processes that run stay, and the error is logged with its place."""

    def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
        refused = files_refused(process_environ())
        if refused is not None:
            log.error("reload rejected", extra={"error": refused})
            return
        log.info("reloading", extra={"catalogue": str(catalogue_path())})
        replace_file(None)  # the new processes (forked from this one) read it afresh
        super().signal_handler_reload(*args, **kwargs)


def server(settings: Settings, target: str = API) -> Any:
    """granian serving the app (api/bridge.py's ``Bridge``) that ``target``
    ("module:factory") makes."""
    s = settings.api
    return _Server(
        target,
        address=s.host,
        port=s.port,
        interface=Interfaces.ASGINL,  # no lifespan events: nothing to start or stop
        factory=True,
        workers=s.workers,
        backlog=2048,
        backpressure=CONNECTIONS,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS, keep_alive=True,
                                     max_buffer_size=MAX_HEAD_BYTES),
        log_level=LogLevels(settings.log.level.lower()),
        log_dictconfig=_log_config(settings.log.level),
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
    )


def main(argv: list[str] | None = None) -> None:
    """Start the API server: granian with the bridged app on the configured host and port."""
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--consul", help="Consul agent host:port for live settings "
                        "(default: $CONSUL_HTTP_ADDR)")
    args = parser.parse_args(argv)
    if args.consul:
        set_command_line({"CONSUL_HTTP_ADDR": args.consul})
    try:
        settings = load_settings(process_environ())  # what the server starts with
    except SettingsError as exc:
        refuse_to_start(exc)
    access = settings.access
    if open_off_loopback(access.require_keys, settings.api.host, bool(access.keys.strip())):
        refuse_to_start(SettingsError(
            f"the API would listen on {settings.api.host} with no API key to check: set "
            "API_KEYS (python -m api.keys new <name>), listen on 127.0.0.1, or set "
            "API_REQUIRE_KEYS=off to serve anyone who can connect"))
    configure_logging(settings.log.level)
    _metrics_dir()
    _shelf_dir()
    server(settings).serve()


if __name__ == "__main__":
    main()
