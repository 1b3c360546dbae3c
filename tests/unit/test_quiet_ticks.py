"""An idle system's log: the tick's and the plan's routine lines at DEBUG, and the ticks
summed up once a minute."""

from __future__ import annotations

import logging

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from shared.queue import PLAN_TASK, REFRESH_BATCH_TASK, TICK_TASK
from shared.telemetry.logs import RoutineTasks
from worker.summary import TickSummary


def record(logger: str, level: int, msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, msg, args, None)  # type: ignore[arg-type]


BEAT = "Scheduler: Sending due task %s (%s)"


@pytest.mark.parametrize(
    ("made", "routine"),
    [
        (record("celery.beat", logging.INFO, BEAT, ("tick", TICK_TASK)), True),
        (record("celery.beat", logging.INFO, BEAT, ("plan", PLAN_TASK)), True),
        (record("celery.worker.strategy", logging.INFO, LOG_RECEIVED,
                ({"id": "1", "name": TICK_TASK},)), True),
        (record("celery.app.trace", logging.INFO, LOG_SUCCESS,
                ({"id": "1", "name": PLAN_TASK, "runtime": 0.1},)), True),
        # the refreshes the tick sends stay at INFO: they are the work
        (record("celery.worker.strategy", logging.INFO, LOG_RECEIVED,
                ({"id": "2", "name": REFRESH_BATCH_TASK},)), False),
        # a routine task's failure is no routine
        (record("celery.app.trace", logging.ERROR, "Task %(name)s[%(id)s] raised",
                ({"id": "1", "name": TICK_TASK},)), False),
        # not Celery's, or of another shape
        (record("worker.tasks", logging.INFO, "tick %s %s", ("a", TICK_TASK)), False),
        (record("celery.beat", logging.INFO, "beat: Starting...", ()), False),
        (record("celery.beat", logging.INFO, "%s", (TICK_TASK,)), False),
    ],
)
def test_routine_task_lines_go_to_debug(made, routine):
    level = made.levelno
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.INFO)
        kept = RoutineTasks({TICK_TASK, PLAN_TASK}).filter(made)
        assert kept is not routine
        assert made.levelno == (logging.DEBUG if routine else level)
        root.setLevel(logging.DEBUG)  # with DEBUG on, they are shown, as DEBUG
        assert RoutineTasks({TICK_TASK, PLAN_TASK}).filter(made)
    finally:
        root.setLevel(before)


def test_the_ticks_of_a_minute_make_one_line():
    summary = TickSummary(period=60.0)
    assert summary.add(1000.0, 2, 0, 0, 1.5) is None  # the first tick starts the minute
    for i in range(1, 60):
        assert summary.add(1000.0 + i, 1 if i % 10 == 0 else 0, 0, 0, 0.8) is None
    line = summary.add(1060.0, 0, 3, 1, 4.25)
    assert line == {"ticks": 61, "claimed": 2 + 5, "idle_dropped": 3, "probes": 1,
                    "slowest_ms": 4.25, "period_s": 60.0}
    assert summary.add(1061.0, 0, 0, 0, 0.5) is None  # a new minute, from the line on
    assert summary.add(1120.0, 1, 0, 0, 0.5) == {
        "ticks": 2, "claimed": 1, "idle_dropped": 0, "probes": 0, "slowest_ms": 0.5,
        "period_s": 60.0}
