"""Configuration from Consul KV, live: precedence, changes, outages and bad values."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from launcher.services import free_port
from shared.config.consul import seed
from shared.config.live import LiveSettings, live_settings
from shared.config.settings import Settings
from shared.store.entry import Entry
from shared.store.keys import Keys
from tests.harness import Stack
from tests.helpers import VIEW, eventually, make_live
from tests.integration.fake_consul import FakeConsul
from tests.integration.shop import with_shop

TOKEN = "consul-acl-token"
CONSUL_PREFIX = "cpconsul"
API_PROCESSES = 2  # each follows Consul on its own


@pytest.fixture
def consul() -> Iterator[FakeConsul]:
    server = FakeConsul(free_port(), token=TOKEN).start()
    yield server
    if server._server is not None:
        server.stop()


@pytest.fixture
def consul_env(env: dict[str, str], tmp_path: Path, consul: FakeConsul) -> dict[str, str]:
    ini = tmp_path / "config.ini"
    ini.write_text("[cache]\nttl = 60\nnegative_ttl = 20\n")
    # Its own key prefix, so its worker's queues are its own.
    return {**env, "CACHEDPROXY_CONFIG": str(ini), "CONSUL_HTTP_ADDR": consul.address,
            "CONSUL_HTTP_TOKEN": TOKEN, "KEY_PREFIX": CONSUL_PREFIX}


@pytest.fixture
def started(consul_env: dict[str, str]) -> Iterator[list[LiveSettings]]:
    """live_settings() calls made by a test, stopped afterwards."""
    made: list[LiveSettings] = []
    yield made
    for live in made:
        if live.watcher is not None:
            live.watcher.stop()


def start(env: dict[str, str], started: list[LiveSettings]) -> LiveSettings:
    live = live_settings(env)
    started.append(live)
    return live


def changed(live: LiveSettings) -> threading.Event:
    """An event set when the live settings next change."""
    event = threading.Event()
    live.subscribe(lambda old, new: event.set())
    return event


def test_consul_overrides_ini_and_env_overrides_consul(consul, consul_env, started):
    """Precedence: defaults < config.ini < Consul KV < environment."""
    consul.put("cachedproxy/cache/ttl", "30")
    consul.put("cachedproxy/cache/negative_ttl", "5")
    live = start({**consul_env, "CACHE_NEGATIVE_TTL": "9"}, started)
    settings = live.get()
    assert settings.cache.ttl == 30  # Consul over config.ini's 60
    assert settings.cache.negative_ttl == 9  # the environment over Consul's 5
    assert settings.cache.stale_if_error == Settings().cache.stale_if_error  # default


def test_a_change_in_consul_applies_without_restart(consul, consul_env, started):
    """A value put in Consul reaches the running process through its blocking query."""
    live = start(consul_env, started)
    assert live.get().cache.ttl == 60
    event = changed(live)
    consul.put("cachedproxy/cache/ttl", "45")
    assert event.wait(5)
    assert live.get().cache.ttl == 45
    assert any("index=" in q and "wait=" in q for q in consul.requests)  # blocking queries


def test_deleting_the_key_falls_back_to_config_ini(consul, consul_env, started):
    """A key removed from Consul gives way to config.ini again."""
    consul.put("cachedproxy/cache/ttl", "45")
    live = start(consul_env, started)
    event = changed(live)
    consul.delete("cachedproxy/cache/ttl")
    assert event.wait(5)
    assert live.get().cache.ttl == 60


def test_malformed_value_is_rejected_and_the_previous_stays(consul, consul_env, started,
                                                            caplog):
    """`ttl = abc` is refused with a log line naming the key; the last good value stays."""
    consul.put("cachedproxy/cache/ttl", "45")
    live = start(consul_env, started)
    assert live.get().cache.ttl == 45
    live.watcher.applied.clear()
    with caplog.at_level(logging.ERROR, logger="shared.config.live"):
        consul.put("cachedproxy/cache/ttl", "abc")
        assert live.watcher.applied.wait(5)
    assert live.get().cache.ttl == 45
    rejected = [r for r in caplog.records if r.getMessage() == "config value rejected"]
    assert rejected and rejected[0].key == "cachedproxy/cache/ttl"


def test_inconsistent_update_is_rejected_whole(consul, consul_env, started, caplog):
    """Values that parse but break a rule together (swr > stale-if-error) change nothing."""
    live = start(consul_env, started)
    live.watcher.applied.clear()
    with caplog.at_level(logging.ERROR, logger="shared.config.live"):
        consul.put("cachedproxy/cache/stale_while_revalidate", "100")
        consul.put("cachedproxy/cache/stale_if_error", "10")
        eventually(lambda: any(r.getMessage() == "config update rejected"
                               for r in caplog.records), 5, "rejection logged")
    assert live.get().cache.stale_if_error == Settings().cache.stale_if_error


def test_restart_only_settings_are_logged_not_applied(consul, consul_env, started, caplog):
    """Changing the Redis URL or a port in Consul says 'restart needed' and changes nothing."""
    live = start(consul_env, started)
    port = live.get().api.port
    live.watcher.applied.clear()
    with caplog.at_level(logging.WARNING, logger="shared.config.live"):
        consul.put("cachedproxy/api/port", "9999")
        consul.put("cachedproxy/cache/ttl", "33")
        eventually(lambda: live.get().cache.ttl == 33, 5, "live key applied")
    assert live.get().api.port == port
    restart = [r for r in caplog.records if r.getMessage() == "restart needed"]
    assert [r.key for r in restart] == ["cachedproxy/api/port"]


def test_consul_down_at_start_then_back(consul, consul_env, started, caplog):
    """Consul unreachable at start: the process starts from config.ini with a warning,
    and applies Consul's values once it answers."""
    consul.put("cachedproxy/cache/ttl", "21")
    consul.stop()
    with caplog.at_level(logging.WARNING, logger="shared.config.live"):
        live = start(consul_env, started)
    assert live.get().cache.ttl == 60
    assert any(r.getMessage().startswith("consul unreachable at start") for r in caplog.records)
    event = changed(live)
    consul.start()
    assert event.wait(10)
    assert live.get().cache.ttl == 21


def test_consul_going_away_keeps_the_last_good_configuration(consul, consul_env, started,
                                                             caplog):
    """When Consul goes away, nothing changes; when it is back, changes apply again."""
    consul.put("cachedproxy/cache/ttl", "44")
    live = start(consul_env, started)
    with caplog.at_level(logging.WARNING, logger="shared.config.live"):
        consul.stop()
        eventually(lambda: "consul unreachable, keeping" in caplog.text, 5, "outage noticed")
    assert live.get().cache.ttl == 44
    event = changed(live)
    consul.start()
    consul.put("cachedproxy/cache/ttl", "55")
    assert event.wait(10)
    assert live.get().cache.ttl == 55


def test_wrong_token_is_refused_and_the_token_is_never_logged(consul, consul_env, started,
                                                              caplog):
    """Consul refusing the token is an unreachable Consul; the token appears in no log."""
    consul.put("cachedproxy/cache/ttl", "44")
    with caplog.at_level(logging.DEBUG):
        live = start({**consul_env, "CONSUL_HTTP_TOKEN": "wrong-" + TOKEN}, started)
    assert live.get().cache.ttl == 60
    assert TOKEN not in caplog.text


def max_age(response: requests.Response) -> int:
    return int(response.headers["Cache-Control"].split(",")[0].removeprefix("max-age="))


@pytest.fixture
def consul_stack(consul_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    """A worker following Consul, on the session's Redis and demo upstream; a test may
    add an API."""
    with Stack(consul_env, tmp_path) as stack:
        stack.worker("consul", concurrency=1)
        yield stack


def test_live_ttl_change_reaches_worker_and_api(consul, consul_env, started, consul_stack,
                                                store, demo):
    """Setting cachedproxy/c42/ttl changes the max-age the API reports, the freshness the
    worker gives entries and when it refreshes them, within 5 seconds, no restart."""
    live = start(consul_env, started)
    server = threaded_wsgi_server(app_from_settings(live.get(), live.get), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    key = Keys(CONSUL_PREFIX).entry("c42:event:team-standup")
    try:
        first = requests.get(f"{api}{VIEW}/team-standup/", timeout=10)
        assert 55 <= max_age(first) <= 60  # config.ini's ttl
        make_live(store, CONSUL_PREFIX, "board-meeting")  # wanted: its fetch plans the next
        requests.get(f"{api}{VIEW}/board-meeting/", timeout=10)  # not asked for again

        def board_due() -> float:
            return store.zscore(Keys(CONSUL_PREFIX).schedule(), "c42:event:board-meeting") / 1000

        assert board_due() - time.time() > 40  # planned at ttl 60 x 0.8, less jitter
        consul.put("cachedproxy/c42/ttl", "7")

        def refetched_with_new_ttl() -> bool:
            store.delete(key, Keys(CONSUL_PREFIX).entry("c42:subscriptions:team-standup"))
            r = requests.get(f"{api}{VIEW}/team-standup/", timeout=10)
            entry = Entry.from_fields(store.hgetall(key))
            return (max_age(r) <= 7
                    and entry is not None and entry.fresh_until - entry.checked_at == 7)

        eventually(refetched_with_new_ttl, 5, "worker and API use ttl 7")
        eventually(lambda: board_due() - time.time() <= 7 * 0.8, 5,
                   "refreshes planned at the old ttl moved into the new period")
    finally:
        server.shutdown()
        server.server_close()


def test_seed_writes_defaults_once_and_keeps_existing_values(consul, consul_env):
    """`python -m shared.config.live seed` puts every live option under the prefix, and never
    overwrites a key that is already set."""
    consul.put("cachedproxy/cache/ttl", "99")
    written = seed(consul_env)
    assert "cachedproxy/cache/ttl" not in written
    assert "cachedproxy/refresh/ratio" in written and "cachedproxy/redis/url" not in written
    assert consul.kv["cachedproxy/cache/ttl"][0] == b"99"
    assert seed(consul_env) == []


def logged(log: Path, event: str) -> int:
    """How many of the JSON lines in ``log`` are ``event``."""
    return sum(1 for line in log.read_text().splitlines()
               if line.startswith("{") and json.loads(line).get("event") == event)


def test_a_catalogue_in_consul_changes_routes_live_and_a_broken_one_is_refused(
        consul, consul_env, consul_stack, shop, tmp_path):
    """An upstream and a view put into cachedproxy/catalogue are served by a running API
    and worker, no restart; a broken update is refused and the last good one stays; a
    view changed is answered in its new shape at once; deleting the key brings back the
    file's catalogue. Every API process follows Consul on its own: each step waits until
    all of them have taken the update."""
    api = consul_stack.api(API_WORKERS=str(API_PROCESSES))
    api_log = consul_stack.logs / "api.log"

    def every_process(event: str, times: int, what: str) -> None:
        eventually(lambda: logged(api_log, event) >= times * API_PROCESSES, 10, what)

    assert requests.get(f"{api}/prices/sku-1/", timeout=10).status_code == 404
    good = with_shop(tmp_path, shop.base_url).read_text()
    consul.put("cachedproxy/catalogue", good)
    every_process("catalogue applied", 1, "the Consul catalogue taken")

    def served() -> bool:
        r = requests.get(f"{api}/prices/sku-1/", timeout=10)
        return r.status_code == 200 and r.json() == {"sku": "sku-1", "price": 12.5}

    eventually(served, 10, "the shop's view served from the Consul catalogue")
    consul.put("cachedproxy/catalogue", good.replace('keep = "{name: name, price: price}"',
                                                    'keep = "{name: "'))
    every_process("catalogue update rejected", 1, "the API refusing the broken catalogue")
    assert all(served() for _ in range(2 * API_PROCESSES))  # the last good catalogue stays
    # A view made differently now: answered anew, not from the process's copy of the old.
    consul.put("cachedproxy/catalogue", good.replace(
        'body = "{sku: params.sku, price: product.price}"',
        'body = "{sku: params.sku, cost: product.price}"'))
    every_process("catalogue applied", 2, "the changed view taken")
    assert all(requests.get(f"{api}/prices/sku-1/", timeout=10).json()
               == {"sku": "sku-1", "cost": 12.5} for _ in range(2 * API_PROCESSES))
    consul.delete("cachedproxy/catalogue")
    every_process("catalogue applied", 3, "the file's catalogue back")
    assert requests.get(f"{api}/prices/sku-1/", timeout=10).status_code == 404
    assert requests.get(f"{api}{VIEW}/team-standup/", timeout=10).status_code == 200
