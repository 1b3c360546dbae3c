"""REDIS_SENTINELS: how the sentinels, the master's credentials and TLS reach the cache's
client and Celery's broker."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from shared.config.checks import sentinel_addresses
from shared.config.settings import SettingsError, load_settings
from shared.queue import celery_config
from shared.store.client import connect, sentinel_options


@pytest.mark.parametrize(("text", "addresses"), [
    ("10.0.0.1:26379", [("10.0.0.1", 26379)]),
    ("a:1, b:2 ,c:3", [("a", 1), ("b", 2), ("c", 3)]),
    ("[::1]:26379,s2:26380", [("::1", 26379), ("s2", 26380)]),
    ("", []),
])
def test_sentinel_addresses_are_parsed_in_order(text, addresses):
    assert sentinel_addresses(text) == addresses


@pytest.mark.parametrize("text", ["s1", "s1:", ":26379", "s1:port", "s1:0", "s1:65536",
                                  "s1:26379,s2"])
def test_malformed_sentinel_addresses_name_the_item(text):
    with pytest.raises(SettingsError, match=r"redis.sentinels: item \d+ is not host:port"):
        sentinel_addresses(text)


@pytest.mark.parametrize(("env", "message"), [
    ({"REDIS_SENTINELS": " , "}, "redis.sentinels must list host:port items"),
    ({"REDIS_SENTINELS": "s:1", "REDIS_URL": "unix:///tmp/r.sock"},
     "redis.url must be a redis:// or rediss:// URL when redis.sentinels is set"),
    ({"REDIS_SENTINEL_MASTER": "my master"}, "redis.sentinel_master must be a name"),
])
def test_inconsistent_sentinel_settings_are_refused(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env, ini=[])


def settings(**env: str):
    return load_settings({"REDIS_SOCKET_TIMEOUT": "1.5", "REDIS_SENTINELS": "s1:26379,s2:26380",
                          **env}, ini=[]).redis


@pytest.mark.parametrize(("url", "master", "sentinel"), [
    ("redis://127.0.0.1:6379/0",
     {"db": 0, "username": None, "password": None},
     {"password": None}),
    ("redis://:s%40cret@ignored:1/3",
     {"db": 3, "username": None, "password": "s@cret"},
     {"password": None}),
    ("rediss://app:pw@ignored/2",
     {"db": 2, "username": "app", "password": "pw", "ssl": True,
      "ssl_cert_reqs": "required", "ssl_ca_certs": "/ca.pem"},
     {"password": None, "ssl": True, "ssl_cert_reqs": "required", "ssl_ca_certs": "/ca.pem"}),
])
def test_master_credentials_database_and_tls_come_from_redis_url(url, master, sentinel):
    got_master, got_sentinel = sentinel_options(settings(REDIS_URL=url,
                                                         REDIS_TLS_CA_FILE="/ca.pem"))
    timeouts = {"socket_timeout": 1.5, "socket_connect_timeout": 1.5}
    assert got_master == {**master, **timeouts}
    assert got_sentinel == {**sentinel, **timeouts}


def test_the_sentinels_own_password_is_theirs_alone():
    master, sentinel = sentinel_options(settings(REDIS_URL="redis://:data@x/0",
                                                 REDIS_SENTINEL_PASSWORD="watch"))
    assert (master["password"], sentinel["password"]) == ("data", "watch")


def test_the_cache_client_asks_the_sentinels_for_the_master():
    client = connect(settings(REDIS_SENTINEL_MASTER="cache-1"))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "cache-1"
    assert [(c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs[
        "port"]) for c in pool.sentinel_manager.sentinels] == [("s1", 26379), ("s2", 26380)]


def test_a_separate_broker_url_is_used_as_it_is():
    config = celery_config(load_settings({
        "REDIS_SENTINELS": "s1:26379", "BROKER_URL": "redis://queues:6379/1"}, ini=[]))
    assert config["broker_url"] == "redis://queues:6379/1"
    assert "master_name" not in config["broker_transport_options"]


@pytest.mark.parametrize(("url", "broker", "tls"), [
    ("redis://127.0.0.1:6379/0", "sentinel://s1:26379/0;sentinel://s2:26380/0", False),
    ("redis://:pw@x/4", "sentinel://:pw@s1:26379/4;sentinel://:pw@s2:26380/4", False),
    ("rediss://u:pw@x/0", "sentinel://u:pw@s1:26379/0;sentinel://u:pw@s2:26380/0", True),
])
def test_the_broker_is_kombus_sentinel_transport(url, broker, tls):
    config = celery_config(load_settings({
        "REDIS_SENTINELS": "s1:26379,s2:26380", "REDIS_URL": url,
        "REDIS_SENTINEL_PASSWORD": "watch", "REDIS_SOCKET_TIMEOUT": "1.5"}, ini=[]))
    assert config["broker_url"] == broker
    options = config["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"]["password"] == "watch"
    assert options["sentinel_kwargs"]["socket_timeout"] == 1.5
    assert options["global_keyprefix"] == "cachedproxy:celery:"
    assert (config["broker_use_ssl"] is not None) is tls
