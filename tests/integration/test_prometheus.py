"""The shipped Prometheus rules and Grafana dashboard (deploy/): promtool's checks and
unit tests, and every expression evaluated by a real Prometheus scraping a real stack."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from launcher.services import free_port
from shared.config.settings import PROJECT_DIR
from tests.harness import Stack
from tests.helpers import VIEW, eventually, make_live

RULES = PROJECT_DIR / "deploy/prometheus"
DASHBOARD = PROJECT_DIR / "deploy/grafana/dashboards/cachedproxy.json"
PREFIX = "cpprom"
EVENTS = ("team-standup", "quiet-evening", "launch-party")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=RULES, capture_output=True, text=True,
                          timeout=60)


def test_the_rules_are_valid_and_each_alert_fires_in_its_case_only():
    """`promtool check rules` accepts the rules; `promtool test rules` runs
    rules_test.yml, where every alert fires in its case and none in the healthy one."""
    checked = promtool("check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load((RULES / "rules_test.yml").read_text())["tests"]
    alerts = {rule["alert"] for group in yaml.safe_load((RULES / "rules.yml").read_text())[
        "groups"] for rule in group["rules"] if "alert" in rule}
    fired = {check["alertname"] for case in cases for check in case.get("alert_rule_test", [])
             if check["exp_alerts"]}
    healthy = {check["alertname"] for check in cases[0]["alert_rule_test"]
               if not check["exp_alerts"]}
    assert fired == alerts == healthy  # each alert has a firing case and a silent one


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard, its variable at "All"."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"].replace("$upstream", ".*"))
            for panel in panels for target in panel.get("targets", [])]


@pytest.fixture
def prometheus(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A stack (its own Redis with a memory cap, a worker, beat, the API; short TTLs so
    refreshes run) and a Prometheus scraping the API every second with the shipped rules
    evaluated every second: (Prometheus's URL, the API's URL, the stack's Redis URL)."""
    with Stack({**env, "KEY_PREFIX": PREFIX, "CACHE_TTL": "3"}, tmp_path / "stack") as stack:
        stack.redis_server("--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru")
        stack.worker()
        stack.beat()
        api = stack.api()
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES / "rules.yml")],
            "scrape_configs": [{"job_name": "cachedproxy", "static_configs": [
                {"targets": [api.removeprefix("http://")]}]}],
        }))
        with (tmp_path / "prometheus.log").open("w") as log:
            proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            eventually(lambda: _ready(url), 30, "Prometheus ready")
            yield url, api, stack.env["REDIS_URL"]
        finally:
            proc.terminate()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def query(url: str, expr: str) -> list[dict[str, Any]]:
    r = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, f"{expr}: {r.text}"
    return r.json()["data"]["result"]


def test_every_rule_and_dashboard_query_works_on_a_real_prometheus(prometheus):
    """With reads, misses and refreshes going on, every recording rule and every
    dashboard panel's query returns series; every rule evaluates without error; and the
    healthy stack raises no alert, pending or firing."""
    url, api, redis_url = prometheus
    # Refreshed ahead: checks found a change or none, and refresh lag measured.
    make_live(redis.Redis.from_url(redis_url), PREFIX, *EVENTS)
    for _ in range(2):  # a miss, then hits
        for event in EVENTS:
            assert requests.get(f"{api}{VIEW}/{event}/", timeout=10).status_code == 200
        assert requests.get(f"{api}/view/top/5/stars", timeout=10).status_code == 200
    assert requests.get(f"{api}{VIEW}/no-such-event/", timeout=10).status_code == 404

    shipped = [rule for group in yaml.safe_load((RULES / "rules.yml").read_text())["groups"]
               for rule in group["rules"]]
    recorded = [rule["record"] for rule in shipped if "record" in rule]
    wanted = [(name, name) for name in recorded] + dashboard_queries()

    def empty() -> list[str]:
        return [title for title, expr in wanted if not query(url, expr)]

    missing: list[str] = []

    def all_answered() -> bool:
        missing[:] = empty()
        return not missing

    try:
        eventually(all_answered, 60, "every rule and panel with data")
    except AssertionError:
        raise AssertionError(f"no series for: {missing}") from None
    groups = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(shipped)  # every one loaded
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert alerts == []
