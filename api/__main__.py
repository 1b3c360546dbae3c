"""``python -m api``: serve the API with gunicorn and gevent workers.

gevent lets one process hold many requests that wait on a cache miss while it keeps
answering hits; see docs/BENCHMARKS.md for the measurements behind the choice.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from shared.config.live import process_environ, process_settings, set_command_line
from shared.config.settings import Settings, SettingsError, load_settings
from shared.telemetry.logs import configure_logging, refuse_to_start

# Seconds a stopping server gives in-flight requests; within make run's stop budget.
GRACEFUL_TIMEOUT = 7


def _child_exit(_server: Any, worker: Any) -> None:
    """A gunicorn worker ended: its live gauges leave the shared metrics."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _metrics_dir() -> None:
    """prometheus_client's multiprocess mode, in a fresh directory unless one is given."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="cachedproxy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)


def _load_api(settings: Settings) -> Any:
    # Imported here, in the worker after gevent has patched the standard library.
    from api.app import app_from_settings

    live = process_settings()  # one per server process, following Consul
    return app_from_settings(live.get(), live.get)


class ApiServer(BaseApplication):
    """gunicorn serving ``load(settings)`` (the API by default) with gevent workers."""

    def __init__(self, settings: Settings, load: Callable[[Settings], Any] = _load_api) -> None:
        self.settings = settings
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": f"{s.api.host}:{s.api.port}",
            "workers": s.api.workers,
            "worker_class": "api.edge.JsonErrorWorker",
            "worker_connections": 1000,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "timeout": 30,
            "keepalive": 5,
            "control_socket_disable": True,
            "child_exit": _child_exit,
            "logconfig_dict": {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"json": {"()": "shared.telemetry.logs.json_formatter"}},
                "filters": {"context": {"()": "shared.telemetry.logs.ContextFilter"}},
                "handlers": {
                    "stderr": {"class": "logging.StreamHandler", "formatter": "json",
                               "filters": ["context"]}
                },
                "root": {"level": s.log.level.upper(), "handlers": ["stderr"]},
                "loggers": {
                    "gunicorn.error": {"level": s.log.level.upper(), "propagate": True},
                    "gunicorn.access": {"level": "WARNING", "propagate": True},
                },
            },
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load(self.settings)


def main(argv: list[str] | None = None) -> None:
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
    configure_logging(settings.log.level)
    _metrics_dir()
    ApiServer(settings).run()


if __name__ == "__main__":
    main()
