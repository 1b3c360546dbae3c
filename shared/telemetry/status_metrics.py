"""Gauges of each upstream's state (shared/store/status.py's report) and of the
workers and beat, for /metrics: what an operator's alerts and dashboard ask."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

STATES = ("answering", "paced", "failing")
Row = dict[str, Any]


def _time(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


# name (after cachedproxy_upstream_), help, the value of a report row (None: absent)
GAUGES: tuple[tuple[str, str, Callable[[Row], float | None]], ...] = (
    ("up", "1: the upstream answers; 0: failing (its refreshes held, one probe per "
     "back-off)", lambda row: 0.0 if row["state"] == "failing" else 1.0),
    ("failures", "Upstream-wide failures in a row", lambda row: row["failures"]),
    ("failing_since_timestamp_seconds", "When the failures in a row of a failing upstream "
     "began (absent: not failing)", lambda row: _time(row["failing_since"])),
    ("spent_last_hour", "Requests made to the upstream in the last hour",
     lambda row: row["budget"]["spent_last_hour"]),
    ("budget_per_hour", "The upstream's request budget an hour (absent: no limit)",
     lambda row: row["budget"]["per_hour"]),
    ("reported_remaining", "What the upstream last said remains of its rate limit "
     "(absent: it says nothing)",
     lambda row: None if row["reported"] is None else row["reported"]["remaining"]),
    ("live_resources", "Live resources of the upstream (refreshed ahead)",
     lambda row: row["live_resources"]),
    ("refresh_overdue_seconds", "How late the upstream's most overdue live refresh is "
     "(0: none due)", lambda row: row["refresh_overdue_s"]),
    ("oldest_stale_seconds", "How long the upstream's stalest live entry has been past "
     "its freshness (0: all fresh)", lambda row: row["oldest_stale_s"]),
)


def status_metrics(report: Sequence[Row], workers: int, last_tick: float | None
                   ) -> Iterator[Metric]:
    """The gauges of one status report, the workers seen alive and beat's last tick."""
    for name, doc, value in GAUGES:
        gauge = GaugeMetricFamily(f"cachedproxy_upstream_{name}", doc, labels=["upstream"])
        for row in report:
            found = value(row)
            if found is not None:
                gauge.add_metric([row["upstream"]], float(found))
        yield gauge
    state = GaugeMetricFamily("cachedproxy_upstream_state", "1 for the upstream's state: "
                              "answering, paced (refreshes wait for the budget) or failing",
                              labels=["upstream", "state"])
    for row in report:
        for each in STATES:
            state.add_metric([row["upstream"], each], 1.0 if row["state"] == each else 0.0)
    yield state
    yield GaugeMetricFamily("cachedproxy_workers_alive", "Workers that sent a heartbeat in "
                            "the last 10 s", value=workers)
    if last_tick is not None:
        yield GaugeMetricFamily("cachedproxy_beat_last_tick_timestamp_seconds",
                                "When beat's tick last ran", value=last_tick)
