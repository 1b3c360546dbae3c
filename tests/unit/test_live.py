"""Consul KV listings to settings layers, and applying them, without Consul."""

from shared.config.live import LiveSettings, kv_layer


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
