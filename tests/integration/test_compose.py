"""docker-compose.yml is valid, safe by default, and runs every part with a healthcheck."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"C42_TOKEN": "t", "FLOWER_BASIC_AUTH": "ops:pw", "API_KEYS": "web:" + "0" * 64}
LONG_RUNNING = {"redis", "consul", "demo", "worker", "beat", "flower", "api"}
SENTINEL_PROFILE = {"redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
                    "worker-a", "worker-b", "api-a", "api-b"}


def compose_config(env: dict[str, str], *profiles: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    chosen = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *chosen, "config"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60)


def default_services(services: dict[str, dict]) -> set[str]:
    """The services ``docker compose up`` starts without a profile."""
    return {name for name, service in services.items() if not service.get("profiles")}


def profiled(services: dict[str, dict], profile: str) -> set[str]:
    """The services of one profile."""
    return {name for name, service in services.items() if profile in service.get("profiles", [])}


def test_compose_file_is_valid_and_complete():
    """`docker-compose config` accepts the file; every service of the system is there."""
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert default_services(services) == LONG_RUNNING | {"consul-seed"}
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), name
        assert services[name].get("restart") == "unless-stopped", name
    assert "--appendonly" in services["redis"]["command"]


def test_published_ports_are_loopback_only():
    """Nothing is published beyond 127.0.0.1."""
    services = yaml.safe_load(compose_config(SECRETS).stdout)["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published
    assert all(p.get("host_ip") == "127.0.0.1" if isinstance(p, dict) else
               str(p).startswith("127.0.0.1:") for p in published)


def test_no_secret_has_a_default():
    """Without the upstream token, Flower's login or an API key, compose refuses to
    start."""
    for missing in SECRETS:
        result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr


def test_sentinel_profile_runs_two_of_each_behind_three_sentinels():
    """``--profile sentinel``: a master, a replica (of the master), three sentinels
    watching it with quorum 2, and two API and two worker containers (each worker with a
    beat) that know Redis only through the sentinels."""
    result = compose_config(SECRETS, "sentinel")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert profiled(services, "sentinel") == SENTINEL_PROFILE
    assert services["redis-replica"]["command"][-3:] == ["--replicaof", "redis-master", "6379"]
    for n in (1, 2, 3):
        script = " ".join(services[f"sentinel-{n}"]["command"])
        assert "sentinel monitor mymaster redis-master 6379 2" in script
        assert "--sentinel" in script
    for name in ("worker-a", "worker-b", "api-a", "api-b"):
        env = services[name]["environment"]
        assert env["REDIS_SENTINELS"] == "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
        assert env["REDIS_SENTINEL_MASTER"] == "mymaster"
        assert services[name].get("healthcheck", {}).get("test"), name
    for name in ("worker-a", "worker-b"):
        assert "--beat" in services[name]["command"]
    ports = [p for name in ("api-a", "api-b") for p in services[name]["ports"]]
    assert len(ports) == 2
    assert all(p.get("host_ip") == "127.0.0.1" if isinstance(p, dict) else
               str(p).startswith("127.0.0.1:") for p in ports)


def test_monitoring_profile_scrapes_with_a_metrics_key_and_loads_the_shipped_rules():
    """``--profile monitoring``: Prometheus scraping the API's /metrics with the metrics
    key, its rules from deploy/prometheus, and Grafana provisioned with the dashboard;
    each refuses to start without its secret, published on loopback only."""
    result = compose_config(SECRETS, "monitoring")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert profiled(services, "monitoring") == {"prometheus", "grafana"}
    prometheus, grafana = services["prometheus"], services["grafana"]
    script = prometheus["command"][0].replace("$$", "$")  # as the shell gets it
    assert '[ -n "$METRICS_KEY" ] || {' in script  # no key: no Prometheus scraping a 401
    assert 'credentials: "$METRICS_KEY"' in script and '"api:8080"' in script
    assert "rule_files: [/etc/cachedproxy/rules.yml]" in script
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"] + grafana["volumes"])
    assert mounts[str(ROOT / "deploy/prometheus")] == "/etc/cachedproxy"
    assert (ROOT / "deploy/prometheus/rules.yml").is_file()
    assert mounts[str(ROOT / "deploy/grafana/dashboards")] == "/var/lib/grafana/dashboards"
    assert '[ -n "$GF_SECURITY_ADMIN_PASSWORD" ] || {' in grafana["command"][0].replace("$$", "$")
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "METRICS_KEYS" in services["api"]["environment"]
    for service in (prometheus, grafana):
        assert service["healthcheck"]["test"] and service["restart"] == "unless-stopped"
        assert all(str(p.get("host_ip", p) if isinstance(p, dict) else p).startswith(
            "127.0.0.1") for p in service["ports"])
