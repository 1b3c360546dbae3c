"""The whole system against a Redis that requires an ACL user's password over TLS, as
``make run`` starts it (worker, beat, the API under ``python -m api``): views are
fetched and served, /readyz is ready, and the password appears in no log and no answer.
And Redis Sentinel over TLS: the cache's client and the broker find a master that
requires a password through sentinels that speak only TLS.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from launcher.services import (
    free_port,
    port_open,
    redis_server_binary,
    spawn,
    wait_for,
)
from shared.config.settings import load_settings
from shared.queue import celery_app
from shared.store.client import connect
from tests.harness import Stack, start_redis, stop
from tests.helpers import VIEW, eventually, expected

USER = "cachedproxy"


def certificates(where: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (where / n for n in
                                  ("ca.key", "ca.pem", "redis.key", "redis.csr", "redis.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=cachedproxy test CA", "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(csr))
    ext = where / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext))
    return ca


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    ca = certificates(tmp_path)
    password = secrets.token_urlsafe(24)
    port = free_port()
    proc = start_redis(
        tmp_path / "redis", port, False, "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(tmp_path / "redis.pem"), "--tls-key-file",
        str(tmp_path / "redis.key"), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
        "--user", "default", "off", "--user", USER, "on", f">{password}", "~*", "&*", "+@all")
    try:
        yield f"rediss://{USER}:{password}@127.0.0.1:{port}/0", password, ca
    finally:
        stop([proc])


def test_everything_runs_against_redis_with_acl_password_and_tls(tls_redis, env, tmp_path):
    url, password, ca = tls_redis
    with pytest.raises(redis.exceptions.RedisError):  # no TLS, or no password: refused
        redis.Redis.from_url(url.replace("rediss://", "redis://"), socket_timeout=2).ping()
    with pytest.raises(redis.exceptions.RedisError):
        redis.Redis.from_url(url.replace(password, "wrong"), ssl_ca_certs=str(ca)).ping()
    env = {**env, "REDIS_URL": url, "REDIS_TLS_CA_FILE": str(ca), "KEY_PREFIX": "cptls",
           "REFRESH_TICK_INTERVAL": "0.5"}
    logs = tmp_path / "logs"
    with Stack(env, logs) as stack:
        stack.worker("tls", concurrency=1)
        stack.beat()
        api = stack.api()
        miss = requests.get(f"{api}{VIEW}/launch-party/", timeout=15)
        assert miss.status_code == 200 and miss.json() == expected("launch-party")
        hit = requests.get(f"{api}{VIEW}/launch-party/", timeout=15)
        assert hit.headers["Cache-Status"].startswith("cachedproxy; hit")
        eventually(lambda: requests.get(f"{api}/readyz", timeout=5).status_code == 200, 15,
                   "ready: Redis, a worker and beat, all over TLS")
        ready = requests.get(f"{api}/readyz", timeout=5).text
        assert password not in ready
    for log in logs.glob("*.log"):
        assert password not in log.read_text(), log.name


def test_sentinels_over_tls_name_a_master_that_requires_a_password(tmp_path: Path):
    """A master and a replica with only TLS ports and a password, three sentinels with
    only TLS ports: the cache's client and the broker (kombu's Sentinel transport) find
    the master through the sentinels, both over TLS, and work."""
    ca = certificates(tmp_path)
    password = secrets.token_urlsafe(24)
    tls = ["--tls-cert-file", str(tmp_path / "redis.pem"), "--tls-key-file",
           str(tmp_path / "redis.key"), "--tls-ca-cert-file", str(ca), "--tls-auth-clients",
           "no", "--tls-replication", "yes"]
    master, replica = free_port(), free_port()
    procs = [start_redis(tmp_path / "master", master, False, "--port", "0", "--tls-port",
                         str(master), "--requirepass", password, *tls)]
    sentinels = []
    try:
        procs.append(start_redis(tmp_path / "replica", replica, False, "--port", "0",
                                 "--tls-port", str(replica), "--requirepass", password,
                                 "--masterauth", password, "--replicaof", "127.0.0.1",
                                 str(master), *tls))
        for _ in range(3):
            port = free_port()
            directory = tmp_path / f"sentinel-{port}"
            directory.mkdir()
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"tls-cert-file {tmp_path / 'redis.pem'}\ntls-key-file {tmp_path / 'redis.key'}\n"
                f"tls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\n"
                f"sentinel monitor mymaster 127.0.0.1 {master} 2\n"
                f"sentinel auth-pass mymaster {password}\n")
            procs.append(spawn([redis_server_binary(), str(conf), "--sentinel"],
                               stdout=subprocess.DEVNULL))
            wait_for(lambda p=port: port_open("127.0.0.1", p), 10, "sentinel", procs[-1])
            sentinels.append(f"127.0.0.1:{port}")
        settings = load_settings({"REDIS_SENTINELS": ",".join(sentinels),
                                  "REDIS_URL": f"rediss://:{password}@unused/0",
                                  "REDIS_TLS_CA_FILE": str(ca)}, ini=[])
        client = connect(settings.redis)

        def reachable() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:  # the sentinels are still starting
                return False

        eventually(reachable, 10, "the master found through the sentinels")
        assert client.connection_pool.get_master_address() == ("127.0.0.1", master)
        with celery_app(settings).connection_for_write() as conn:
            queue = conn.SimpleQueue("tls-check")
            queue.put({"through": "sentinels"})
            message = queue.get(timeout=10)
            message.ack()
            queue.close()
        assert message.payload == {"through": "sentinels"}
    finally:
        stop(list(reversed(procs)))
