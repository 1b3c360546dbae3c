"""What the command-line tools share: run/env as make run writes it and a tool reads it,
errors as one JSON line, and what make run takes as given rather than its own."""

from __future__ import annotations

import json

import pytest
import redis

from demo.server import demo_env
from shared import cli
from shared.config.settings import SettingsError, given
from shared.errors import NotFound


def test_run_env_holds_where_things_are_and_never_a_secret():
    environ = {"REDIS_URL": "redis://127.0.0.1:4242/0", "KEY_PREFIX": "shop",
               "C42_TOKEN": "secret", "ADMIN_TOKEN": "secret", "CACHEDPROXY_CONFIG": ""}
    text = cli.env_lines(environ)
    assert text == "REDIS_URL=redis://127.0.0.1:4242/0\nKEY_PREFIX=shop\n"
    assert cli.parse_env(text + "ADMIN_TOKEN=x\n# a comment\nnonsense\n") == {
        "REDIS_URL": "redis://127.0.0.1:4242/0", "KEY_PREFIX": "shop"}


def test_a_tool_s_own_environment_wins_over_run_env(tmp_path, monkeypatch):
    (tmp_path / "env").write_text("REDIS_URL=redis://127.0.0.1:1/0\nKEY_PREFIX=run\n")
    monkeypatch.setenv("CACHEDPROXY_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("KEY_PREFIX", "mine")
    found = cli.environ()
    assert (found["REDIS_URL"], found["KEY_PREFIX"]) == ("redis://127.0.0.1:1/0", "mine")


@pytest.mark.parametrize(("error", "code", "exit_code"), [
    (NotFound("no upstream 'x'"), "not_found", 2),
    (SettingsError("config.ini: [cache] ttl: not an integer"), "bad_configuration", 2),
    (redis.ConnectionError("refused"), "store_unavailable", 1),
    (ConnectionRefusedError("refused"), "unavailable", 1),
])
def test_an_error_is_one_json_line_and_an_exit_code(capsys, error, code, exit_code):
    def fail() -> int:
        raise error

    assert cli.guarded(fail) == exit_code
    out = capsys.readouterr()
    [line] = out.err.splitlines()
    assert json.loads(line)["error"]["code"] == code and out.out == ""


@pytest.mark.parametrize(("ini", "env", "section", "key", "expected"), [
    ("", {}, "redis", "url", False),
    ("[redis]\nurl = redis://10.0.0.5:6379/0\n", {}, "redis", "url", True),
    ("", {"REDIS_URL": "redis://x/0"}, "redis", "url", True),
    ("[c42]\nbase_url = https://c42.example/api/v2\n", {}, "c42", "base_url", True),
    ("[c42]\nbase_url =\n", {}, "c42", "base_url", False),  # empty: not given
    ("[c42]\ntoken = t\n", {}, "github", "base_url", False),
])
def test_what_make_run_takes_as_given(tmp_path, ini, env, section, key, expected):
    (tmp_path / "config.ini").write_text(ini)
    environ = {"CACHEDPROXY_CONFIG": str(tmp_path / "config.ini"), **env}
    assert given(environ, section, key) is expected


def test_the_demo_stands_in_only_for_upstreams_not_given():
    wiring = demo_env(lambda name: name == "c42", "127.0.0.1", 8042, "t")
    assert wiring == {"GITHUB_BASE_URL": "http://127.0.0.1:8042/github", "GITHUB_TOKEN": "t"}


def test_a_bad_key_name_is_one_json_line(capsys):
    from api import keys

    assert keys.main(["new", "bad name!"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert json.loads(out.err)["error"]["message"].startswith("a key's name is 1-64")


def test_a_stopping_make_run_leaves_what_a_newer_one_wrote(tmp_path):
    cli.mark_running(tmp_path)
    written = cli.write_env(tmp_path, {"REDIS_URL": "redis://127.0.0.1:4242/0"})
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    (tmp_path / cli.PID_FILE).write_text("1\n")  # another make run started since
    cli.unmark(tmp_path)
    assert written.exists() and (tmp_path / cli.PID_FILE).exists()
    cli.mark_running(tmp_path)
    cli.unmark(tmp_path)
    assert not written.exists() and not (tmp_path / cli.PID_FILE).exists()
