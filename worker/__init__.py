"""The Celery app: ``celery -A worker worker``, ``celery -A worker beat``, ``... flower``.

Its settings come from ``celeryconfig.py`` (read when Celery first needs them).
"""

import click
from celery import Celery
from celery.signals import (
    beat_init,
    setup_logging,
    user_preload_options,
    worker_init,
    worker_ready,
)

from shared.config.live import set_command_line, settings_or_exit
from shared.config.reload import reload_on_hangup
from shared.queue import PLAN_TASK, TICK_TASK
from shared.telemetry.logs import configure_logging

app = Celery("cachedproxy", include=["worker.tasks", "worker.health"])
app.config_from_object("celeryconfig")
app.conf.worker_consumer = "worker.consumer:Consumer"  # reconnects promptly
app.user_options["preload"].add(
    click.Option(["--consul"], default=None, help="Consul agent host:port for live settings")
)


@user_preload_options.connect
def _consul_address(options: dict[str, object], **_: object) -> None:
    """``celery -A worker --consul host:port ...``: the same as CONSUL_HTTP_ADDR. Then
    the settings and the catalogue are loaded, or the process refuses to start."""
    if options.get("consul"):
        set_command_line({"CONSUL_HTTP_ADDR": str(options["consul"])})
    settings_or_exit()


@setup_logging.connect
def _json_logging(**_: object) -> None:
    """Replace Celery's log setup with JSON lines; the tick's and the plan's routine
    lines at DEBUG (the worker sums the ticks up once a minute at INFO)."""
    configure_logging(settings_or_exit().log.level, routine_tasks={TICK_TASK, PLAN_TASK})


@beat_init.connect
def _no_sent_events(sender: object, **_: object) -> None:
    """Beat sends only the tick, once a second: no "task-sent" events for it, which
    would fill Flower's task list (the tick task itself sends none either). SIGHUP
    reads config.ini and the catalogue again."""
    app.conf.task_send_sent_event = False
    reload_on_hangup()


@worker_ready.connect
def _reload_on_hangup(**_: object) -> None:
    """SIGHUP reads config.ini and the catalogue again, in the process (Celery's own
    handler, installed before this, would restart the worker, and a broken file would
    then stop it)."""
    reload_on_hangup()


@worker_init.connect
def _no_sent_events_for_refreshes(**_: object) -> None:
    """The worker sends only the tick's refreshes: no "task-sent" event for each (a
    second publish per refresh); Flower still sees each one received, started, done."""
    app.conf.task_send_sent_event = False
