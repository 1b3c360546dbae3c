"""The operator's commands as the docs show them, run as written beside ``make run``:
the admin API's curls, the admin command (which finds make run's Redis in run/env), the
catalogue check and ``kill -HUP``, which applies a good catalogue and refuses a broken
one while everything keeps serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shared.cli import parse_env
from shared.config.settings import PROJECT_DIR, load_settings, options
from tests.helpers import VIEW, eventually, get
from tests.launched import ADMIN_TOKEN, Launched, api_leader

ORG_NAME = """
[views.org-name]
route = "/org-name/{org}"
params.org = { type = "id" }
parts = { org = "github:org:{org}" }
body = "{name: org.name, repos: org.public_repos}"
"""


def shell_block(page: str, after: str) -> list[str]:
    """The commands of the first ```sh block after the text ``after`` in docs/``page``,
    continued lines joined, comments kept (bash ignores them)."""
    text = (PROJECT_DIR / "docs" / page).read_text()
    block = text.split(after, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def tool_env(launched: Launched) -> dict[str, str]:
    """A shell beside make run: none of cachedproxy's settings in the environment, only
    where make run's home is; the tools must find its Redis by run/env."""
    ours = {opt.env for opt in options()}
    return {**{k: v for k, v in os.environ.items() if k not in ours},
            "CACHEDPROXY_CONFIG": launched.env["CACHEDPROXY_CONFIG"],
            "CACHEDPROXY_CATALOGUE": launched.env["CACHEDPROXY_CATALOGUE"],
            "CACHEDPROXY_RUN_DIR": str(launched.home / "run"),
            "ADMIN_TOKEN": ADMIN_TOKEN}


def bash(command: str, env: dict[str, str], cwd: Path = PROJECT_DIR
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=60, check=False, env=env, cwd=cwd)


def test_the_admin_api_s_curls_do_what_the_docs_say(launched: Launched):
    commands = shell_block("OPERATIONS.md", "## The admin API")
    assert commands[0].startswith("H=") and len(commands) >= 9
    assert get(f"{launched.api}{VIEW}/launch-party/").status_code == 200
    assert requests.get(f"{launched.api}/github/orgs/Netflix", timeout=20).ok
    script = "\n".join(commands).replace("http://127.0.0.1:8080", launched.api)
    lines = [c for c in script.splitlines() if c.startswith("curl")]
    env = tool_env(launched)
    for line in lines:
        run = bash("\n".join([script.splitlines()[0], line]), env)
        assert run.returncode == 0, (line, run.stderr)
        answer = json.loads(run.stdout)
        assert "error" not in answer, (line, answer)
        if "/admin/entries?" in line:
            assert all(e["resource"].startswith(("github:", "c42:event:"))
                       for e in answer["entries"]), line
        elif "-X DELETE" in line:
            assert answer == {"purged": ["c42:event:launch-party"]}
        elif "/admin/purge" in line:
            assert isinstance(answer["purged"], list), line
        elif "/admin/refresh/" in line:
            assert answer["resource"] == "github:repos:Netflix"
    assert any('"tag": "event:launch-party"' in line for line in lines)
    [status] = shell_block("OPERATIONS.md", "Scripts get the same figures as JSON:")
    figures = bash(status.replace("http://127.0.0.1:8080", launched.api), env)
    assert figures.returncode == 0, figures.stderr
    assert [u["upstream"] for u in json.loads(figures.stdout)["upstreams"]] == ["c42", "github"]


def test_the_admin_command_finds_make_run_s_redis_and_errors_are_one_json_line(
        launched: Launched):
    assert get(f"{launched.api}{VIEW}/team-standup/").status_code == 200
    assert requests.get(f"{launched.api}/github/orgs/Netflix", timeout=20).ok
    env = tool_env(launched)
    listing, purging = shell_block("OPERATIONS.md", "Entries and purges from the machine")
    listed = bash(listing, env)
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert "c42:event:team-standup" in [e["resource"] for e in entries]
    assert all(e["upstream"] == "c42" and not e["live"] for e in entries)
    purged = bash(purging, env)
    assert purged.returncode == 0, purged.stderr
    assert "github:org:Netflix" in json.loads(purged.stdout)["purged"]

    nowhere = {**env, "CACHEDPROXY_RUN_DIR": str(launched.home / "elsewhere"),
               "REDIS_URL": "redis://127.0.0.1:1/0"}
    failed = bash(listing, nowhere)
    assert failed.returncode != 0 and failed.stdout == ""
    [line] = failed.stderr.splitlines()
    assert json.loads(line)["error"]["code"] == "store_unavailable"
    unknown = bash(purging.replace("--upstream github", "--upstream nope"), env)
    assert unknown.returncode == 2
    assert json.loads(unknown.stderr)["error"]["message"] == "no upstream 'nope'"


def test_kill_hup_applies_a_good_catalogue_and_refuses_a_broken_one(launched: Launched):
    """The catalogue section's commands as written: check, then SIGHUP to make run. A
    new view is served by every API process; a typo is refused by each process with the
    place named, and the view stays served."""
    env = tool_env(launched)
    check, hangup = shell_block("CATALOGUE.md", "without a restart:")
    catalogue = launched.home / "catalogue.toml"
    url = f"{launched.api}/org-name/Netflix"
    assert requests.get(url, timeout=10).status_code == 404
    catalogue.write_text(catalogue.read_text() + ORG_NAME)
    checked = bash(check, env)
    assert checked.returncode == 0, checked.stderr
    assert '"route": "/org-name/{org}"' in checked.stdout
    api = api_leader(launched)
    assert bash(hangup, env, cwd=launched.home).returncode == 0

    def served_by_all() -> bool:
        answers = [requests.get(url, timeout=10) for _ in range(8)]
        return all(a.status_code == 200 for a in answers) and answers[0].json() == {
            "name": "Netflix, Inc.", "repos": 150}

    # Each of the API's server processes is replaced by one started after the reload:
    # until the last old one stops, it may still answer from the old catalogue.
    workers = load_settings(launched.env).api.workers
    eventually(lambda: len([r for r in launched.records() if str(r.get("event")).startswith(
        "Stopped old worker")]) >= workers, 30, "every API process replaced")
    assert served_by_all()
    eventually(lambda: len(events(launched, "catalogue applied")) >= 2, 15,
               "the worker and beat applying the catalogue")

    catalogue.write_text(catalogue.read_text().replace("org.public_repos", "orgs.public_repos"))
    refused = bash(check, env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "views.org-name.body: 'orgs' is not a part" in refused.stderr
    assert bash(hangup, env, cwd=launched.home).returncode == 0
    eventually(lambda: len(events(launched, "reload rejected")) >= 3, 15,
               "the API, the worker and beat refusing the broken catalogue")
    assert all("views.org-name.body" in r["error"] for r in events(launched, "reload rejected"))
    assert api_leader(launched) == api
    assert served_by_all()


def events(launched: Launched, event: str) -> list[dict]:
    return [r for r in launched.records() if r.get("event") == event]


def test_a_tool_needs_no_traceback_to_say_what_is_wrong(tmp_path):
    """The Consul seed without an agent, and a catalogue that is not there."""
    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in options()}}
    seeded = subprocess.run(
        [sys.executable, "-m", "shared.config.live", "seed"], capture_output=True, text=True,
        timeout=30, check=False, cwd=PROJECT_DIR,
        env={**env, "CONSUL_HTTP_ADDR": "127.0.0.1:1"})
    assert seeded.returncode == 1 and "Traceback" not in seeded.stderr
    assert json.loads(seeded.stderr)["error"]["code"] == "unavailable"
    missing = subprocess.run(
        [sys.executable, "-m", "api.catalogue", "check", str(tmp_path / "none.toml")],
        capture_output=True, text=True, timeout=30, check=False, cwd=PROJECT_DIR, env=env)
    assert missing.returncode == 2
    assert "cannot read the catalogue" in json.loads(missing.stderr)["error"]["message"]


def _config_with_redis_and_c42(request) -> str:
    demo = request.getfixturevalue("demo")
    return (f"[redis]\nurl = {request.getfixturevalue('redis_url')}\n"
            f"[c42]\nbase_url = {demo.base_url}\ntoken = {demo.upstream.token}\n")


@pytest.mark.parametrize("launched", [_config_with_redis_and_c42], indirect=True)
def test_make_run_uses_the_redis_and_upstream_config_ini_gives(launched: Launched, demo,
                                                               store):
    """A Redis URL and Calendar42's base URL in config.ini are used, not replaced: no
    private Redis, the demo only for GitHub, and run/env names no Redis."""
    try:
        started = {r["service"] for r in launched.records() if r.get("event") == "started"}
        assert "redis" not in started
        serves = next(r["serves"] for r in launched.records()
                      if r.get("service") == "demo upstream")
        assert list(serves) == ["GITHUB_BASE_URL"]
        assert get(f"{launched.api}{VIEW}/team-standup/").status_code == 200
        assert demo.upstream.count("event", "team-standup") == 1  # the configured upstream
        assert store.exists("cplaunch:entry:c42:event:team-standup")
        written = parse_env((launched.home / "run" / "env").read_text())
        assert written == {"KEY_PREFIX": "cplaunch",  # the Redis is config.ini's to say
                           "CACHEDPROXY_CONFIG": launched.env["CACHEDPROXY_CONFIG"],
                           "CACHEDPROXY_CATALOGUE": launched.env["CACHEDPROXY_CATALOGUE"]}
    finally:
        for key in store.scan_iter("cplaunch:*"):  # the session's Redis: leave it clean
            store.delete(key)
