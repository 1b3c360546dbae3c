"""Consul KV listings to settings layers, and applying them, without Consul."""

import os

import pytest

from shared.config import live as live_module
from shared.config.consul import kv_layer
from shared.config.live import LiveSettings, process_settings, set_command_line
from shared.config.settings import PROJECT_DIR
from shared.errors import InvalidRequest
from shared.upstreams import registry


def test_kv_listing_maps_to_sections_and_keys():
    """<prefix>/<section>/<key> becomes {section: {key: value}}; anything else is ignored."""
    items = [
        {"Key": "cachedproxy/cache/ttl", "Value": b"30"},
        {"Key": "cachedproxy/c42/prefetch", "Value": b"a, b"},
        {"Key": "cachedproxy/cache/", "Value": None},  # a folder
        {"Key": "cachedproxy/deep/er/key", "Value": b"x"},
        {"Key": "cachedproxy/top", "Value": b"x"},
    ]
    assert kv_layer(items, "cachedproxy") == {
        "cache": {"ttl": "30"}, "c42": {"prefetch": "a, b"},
    }
    assert kv_layer(None, "cachedproxy") == {}


def no_config(tmp_path):
    (tmp_path / "config.ini").write_text("")
    return {"CACHEDPROXY_CONFIG": str(tmp_path / "config.ini")}


def test_apply_changes_live_keys_and_tells_listeners(tmp_path):
    """A live change is applied and listeners see the old and new settings."""
    live = LiveSettings(no_config(tmp_path))
    seen = []
    live.subscribe(lambda old, new: seen.append((old.cache.ttl, new.cache.ttl)))
    live.apply({"cache": {"ttl": "40"}})
    assert live.get().cache.ttl == 40 and seen == [(252, 40)]
    live.apply({"cache": {"ttl": "40"}})
    assert seen == [(252, 40)]  # no change, no call


def test_consul_section_is_never_taken_from_consul(tmp_path):
    """Where Consul is, and its token, cannot come from Consul itself."""
    live = LiveSettings(no_config(tmp_path))
    live.apply({"consul": {"address": "evil:8500", "token": "t"}})
    assert live.get().consul.address == "" and live.get().consul.token == ""


@pytest.fixture
def fresh_process(monkeypatch, tmp_path):
    """This process's settings state, as at start, with an empty config.ini."""
    monkeypatch.setattr(live_module, "_command_line", {})
    monkeypatch.setattr(live_module, "_process", None)
    for name, value in no_config(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "INFO")


def test_process_settings_are_loaded_once_with_the_command_line_on_top(fresh_process):
    """Every caller in a process gets the same live settings; options from the command
    line (``--consul``) win over the environment, which is left as it was."""
    first = process_settings()
    assert process_settings() is first and first.get().log.level == "INFO"
    set_command_line({"LOG_LEVEL": "WARNING"})
    again = process_settings()
    assert again is not first and again.get().log.level == "WARNING"
    assert process_settings() is again
    assert os.environ["LOG_LEVEL"] == "INFO"


SHOP = (PROJECT_DIR / "catalogue.toml").read_text() + """
[upstreams.shop]
base_url = "https://shop.example/api"
paging = { style = "link", size = "per_page", page_size = 10, max_page_size = 50 }

[upstreams.shop.resources.products]
path = "/brands/{brand}/products"
paged = true
keep = "[].name"
"""


@pytest.fixture
def own_registry(monkeypatch):
    """The registry as at start (the file's catalogue), restored after the test."""
    monkeypatch.setattr(registry, "_live", None)
    monkeypatch.setattr(registry, "_file", None)
    monkeypatch.setattr(registry, "_listeners", [])
    registry._kinds.cache_clear()
    yield
    registry._kinds.cache_clear()


def test_a_catalogue_from_consul_is_applied_whole(tmp_path, own_registry):
    """The catalogue at <prefix>/catalogue replaces the file's: its upstreams, their
    settings (env names and all) and kinds are in force, and subscribers hear of it."""
    live = LiveSettings(no_config(tmp_path))
    heard = []
    registry.subscribe(lambda: heard.append(list(registry.upstreams())))
    settings = live.apply({"shop": {"page_size": "20"}}, SHOP)
    assert heard == [["c42", "github", "shop"]]
    assert settings.section("shop").page_size == 20
    assert registry.kind_of("shop:products:lamps").path_for("shop:products:lamps") == \
        "/brands/lamps/products"
    live.apply({"shop": {"page_size": "20"}}, SHOP)
    assert len(heard) == 1  # the same text again: nothing to do


@pytest.mark.parametrize(("layer", "text"), [
    ({}, SHOP.replace('keep = "[].name"', 'keep = "[."')),  # does not load
    ({"shop": {"page_size": "500"}}, SHOP),  # loads, but its settings do not validate
])
def test_a_broken_catalogue_update_is_rejected_whole(tmp_path, own_registry, layer, text):
    """The last good catalogue, and the settings, stay in force."""
    live = LiveSettings(no_config(tmp_path))
    heard = []
    registry.subscribe(lambda: heard.append(True))
    before = live.get()
    assert live.apply(layer, text) == before
    assert list(registry.upstreams()) == ["c42", "github"] and heard == []
    with pytest.raises(InvalidRequest):
        registry.kind_of("shop:products:lamps")


def test_without_a_catalogue_in_consul_the_files_is_back(tmp_path, own_registry):
    live = LiveSettings(no_config(tmp_path))
    live.apply({}, SHOP)
    assert "shop" in registry.upstreams()
    live.apply({}, None)
    assert list(registry.upstreams()) == ["c42", "github"]
    assert "shop" not in live.get().upstreams
