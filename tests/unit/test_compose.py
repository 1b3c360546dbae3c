"""docker-compose.yml is valid, safe by default, and runs every part with a healthcheck."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"C42_TOKEN": "t", "FLOWER_BASIC_AUTH": "ops:pw"}
LONG_RUNNING = {"redis", "consul", "demo", "worker", "beat", "flower", "api"}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid_and_complete():
    """`docker-compose config` accepts the file; every service of the system is there."""
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == LONG_RUNNING | {"consul-seed"}
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
    """Without the upstream token or Flower's login, compose refuses to start."""
    for missing in SECRETS:
        result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr
