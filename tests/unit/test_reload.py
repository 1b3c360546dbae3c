"""A reload (SIGHUP) reads config.ini and the catalogue file again: a good one is put in
force and its subscribers hear of it; a broken one is refused whole, what runs stays;
``python -m api.catalogue check`` says the same without starting anything."""

from __future__ import annotations

import json
import logging

import pytest

from api import catalogue as catalogue_command
from shared.config.live import LiveSettings
from shared.config.reload import files_refused
from shared.config.settings import PROJECT_DIR
from shared.upstreams import registry

SHIPPED = (PROJECT_DIR / "catalogue.toml").read_text()
ORG_NAME = SHIPPED + """
[views.org-name]
route = "/org-name/{org}"
params.org = { type = "id" }
parts = { org = "github:org:{org}" }
body = "{name: org.name}"
"""
TYPO = ORG_NAME.replace("{name: org.name}", "{name: orgs.name}")


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A catalogue file and a config.ini of the test's own, and the registry as at start,
    restored after the test."""
    catalogue, config = tmp_path / "catalogue.toml", tmp_path / "config.ini"
    catalogue.write_text(SHIPPED)
    config.write_text("")
    monkeypatch.setenv("CACHEDPROXY_CATALOGUE", str(catalogue))
    monkeypatch.setenv("CACHEDPROXY_CONFIG", str(config))
    monkeypatch.delenv("GITHUB_TTL", raising=False)
    monkeypatch.setattr(registry, "_live", None)
    monkeypatch.setattr(registry, "_file", None)
    monkeypatch.setattr(registry, "_listeners", [])
    registry._kinds.cache_clear()
    yield catalogue, config
    registry._kinds.cache_clear()


def view_names() -> list[str]:
    return [v.name for v in registry.views()]


def test_a_good_catalogue_and_config_are_applied_on_reload(files):
    catalogue, config = files
    live = LiveSettings({"CACHEDPROXY_CONFIG": str(config)})
    heard, changed = [], []
    registry.subscribe(lambda: heard.append(view_names()))
    live.subscribe(lambda old, new: changed.append((old.section("github").ttl,
                                                    new.section("github").ttl)))
    assert "org-name" not in view_names()
    catalogue.write_text(ORG_NAME)
    config.write_text("[github]\nttl = 7\n")
    assert live.reload().section("github").ttl == 7
    assert heard and "org-name" in heard[0] and changed == [(0, 7)]
    live.reload()  # the same files again: nothing to tell
    assert len(heard) == 1 and len(changed) == 1


@pytest.mark.parametrize(("text", "ini", "place"), [
    (TYPO, "", "views.org-name.body: 'orgs' is not a part of the view or params"),
    ("[upstreams", "", "not valid TOML"),
    (ORG_NAME, "[github]\nttl = soon\n", "github.ttl"),
    (ORG_NAME, "[github]\npage_size = 500\n", "github.page_size must be between 1 and 100"),
])
def test_a_broken_file_is_refused_whole_and_what_runs_stays(files, caplog, text, ini, place):
    catalogue, config = files
    live = LiveSettings({"CACHEDPROXY_CONFIG": str(config)})
    before, heard = live.get(), []
    registry.subscribe(lambda: heard.append(True))
    catalogue.write_text(text)
    config.write_text(ini)
    assert place in (files_refused({"CACHEDPROXY_CONFIG": str(config)}) or "")
    with caplog.at_level(logging.ERROR, logger="shared.config.live"):
        assert live.reload() is before
    [record] = [r for r in caplog.records if r.getMessage() == "reload rejected"]
    assert place in record.error  # type: ignore[attr-defined]
    assert heard == [] and "org-name" not in view_names()
    assert registry.catalogue().text == SHIPPED


def test_the_files_in_force_are_not_refused(files):
    assert files_refused({"CACHEDPROXY_CONFIG": str(files[1])}) is None


def test_check_prints_the_routes_a_catalogue_would_serve(files, capsys):
    catalogue, _ = files
    assert "org-name" not in view_names()
    catalogue.write_text(ORG_NAME)
    assert catalogue_command.main(["check", str(catalogue)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"route": "/org-name/{org}", "view": "org-name", "read_through": False,
            "params": ["org"], "summary": "org-name"} in lines
    assert lines[-1] == {"ok": True, "catalogue": str(catalogue),
                         "upstreams": ["c42", "github"], "routes": len(lines) - 1}
    assert "org-name" not in view_names()  # checking changes nothing in force


@pytest.mark.parametrize(("text", "message"), [
    (TYPO, ": views.org-name.body: 'orgs' is not a part of the view or params "
           "(parts: org)"),
    (ORG_NAME.replace('params.org = { type = "id" }', ""),
     ": views.org-name.route: {org} is not declared: add params.org"),
])
def test_check_refuses_a_broken_catalogue_with_its_place(files, capsys, text, message):
    catalogue, _ = files
    catalogue.write_text(text)
    assert catalogue_command.main(["check"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    [line] = out.err.splitlines()
    error = json.loads(line)["error"]
    assert error["code"] == "bad_configuration"
    assert error["message"].startswith(str(catalogue) + message)
