"""A pool process forked from a process whose settings follow Consul loads its own
(a real fork: the watcher thread does not cross it)."""

import multiprocessing

from shared.config import live as live_module
from shared.config.live import process_settings


def test_a_forked_process_loads_its_own_settings(monkeypatch, tmp_path):
    """A pool process forked after the settings were loaded loads its own, once."""
    monkeypatch.setattr(live_module, "_command_line", {})
    monkeypatch.setattr(live_module, "_process", None)
    (tmp_path / "config.ini").write_text("")
    monkeypatch.setenv("CACHEDPROXY_CONFIG", str(tmp_path / "config.ini"))
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    parent = id(process_settings())
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(_settings_ids)
    assert child[0] == child[1] != parent


def _settings_ids() -> tuple[int, int]:
    return id(process_settings()), id(process_settings())
