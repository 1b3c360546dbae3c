"""``make run`` for a test: ``python -m launcher`` on free ports with a home of its own
(config.ini, catalogue.toml, run/), its output in a file (the ``launched`` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.services import free_port, wait_for
from shared.config.settings import PROJECT_DIR, options
from tests.harness import process_tree, stop, wait_for_worker


@dataclass
class Launched:
    proc: subprocess.Popen
    output: Path
    api: str
    env: dict[str, str]
    home: Path  # its config.ini, catalogue.toml and run/ directory

    def lines(self) -> list[str]:
        return [line for line in self.output.read_text().splitlines() if line.strip()]

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]

    def started(self, service: str) -> dict:
        return next(r for r in self.records()
                    if r.get("event") == "started" and r.get("service") == service)

    def demo(self, path: str) -> str:
        base = self.started("demo upstream")["url"].removesuffix("/api/v2")
        return f"{base}/_demo/{path}"


def leader(launched: Launched, marker: str) -> int | None:
    """The pid of the launcher's direct child whose command line has ``marker``."""
    for pid, cmd in process_tree(launched.proc.pid).items():
        if marker in cmd and _ppid(pid) == launched.proc.pid:
            return pid
    return None


def api_leader(launched: Launched) -> int | None:
    """The API's main process: ``python -m api`` until the server names it."""
    return leader(launched, "granian ") or leader(launched, "-m api")


def _ppid(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


ADMIN_TOKEN = "launcher-admin-token-0123456789abcdef"


@pytest.fixture
def launched(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launched]:
    """``python -m launcher`` on free ports, its output (stderr) in a file; its config.ini
    is the test's parameter (indirect), if any, a function of the test's fixtures."""
    config = tmp_path / "config.ini"
    config.write_text(getattr(request, "param", lambda _: "")(request))
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text((PROJECT_DIR / "catalogue.toml").read_text())
    ours = {opt.env for opt in options()}
    api_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ours},
        "CACHEDPROXY_CONFIG": str(config),
        "CACHEDPROXY_CATALOGUE": str(catalogue),
        "API_PORT": str(api_port),
        "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "test:launcher-test",
        "KEY_PREFIX": "cplaunch",
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    output = tmp_path / "launcher.log"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "--run-dir", str(tmp_path / "run")],
            env=env, cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    launched = Launched(proc, output, f"http://127.0.0.1:{api_port}", env, tmp_path)
    try:
        wait_for(lambda: any('"running; Ctrl-C' in line for line in launched.lines()), 60,
                 "launcher", proc)
        private = [r["url"] for r in launched.records() if r.get("service") == "redis"]
        if private:  # else config.ini names the Redis
            env["REDIS_URL"] = private[0]
        wait_for_worker(env, proc, hostname=None)
        yield launched
    finally:
        stop([proc], timeout=15)
