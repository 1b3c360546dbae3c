"""Upstream and infrastructure faults: each gets its JSON error, and cached data survives."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from launcher.services import free_port
from shared.errors import UpstreamTimeout
from shared.store.entry import Entry
from shared.store.keys import Keys
from shared.upstreams.kinds import Endpoint
from tests.helpers import PREFIX, VIEW, expected, expire, get
from worker.upstream import UpstreamClient


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"mode": "error", "status": 500}, 502, "upstream_error"),
        ({"mode": "error", "status": 503}, 502, "upstream_error"),
        ({"mode": "malformed"}, 502, "upstream_error"),
        ({"mode": "rate_limit", "retry_after": 30}, 502, "upstream_error"),
        ({"mode": "timeout", "seconds": 5}, 504, "upstream_timeout"),
    ],
)
def test_upstream_failure_on_a_miss(api, demo, fault, status, code):
    """Nothing cached and upstream failing: a JSON 502, or 504 for an upstream timeout."""
    demo.upstream.set_fault_from(fault | {"kind": "event"})
    r = get(f"{api}{VIEW}/launch-party/")
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"


def test_failure_is_not_cached(api, demo):
    """After a failed fetch the next request tries upstream again, and succeeds."""
    demo.upstream.set_fault_from({"mode": "error", "status": 500, "count": 1})
    assert get(f"{api}{VIEW}/team-standup/").status_code == 502
    assert get(f"{api}{VIEW}/team-standup/").json() == expected("team-standup")


def test_upstream_error_never_overwrites_cached_data(api, demo, store):
    """A failing refresh leaves the cached entry exactly as it was."""
    assert get(f"{api}{VIEW}/launch-party/").status_code == 200
    expire(store, "launch-party")
    key = Keys(PREFIX).entry("c42:event:launch-party")
    before = store.hgetall(key)
    for fault in ({"mode": "error", "status": 500}, {"mode": "malformed"}):
        demo.upstream.set_fault_from(fault)
        assert get(f"{api}{VIEW}/launch-party/").status_code == 502
        assert store.hgetall(key) == before
    demo.upstream.set_fault(None)
    assert get(f"{api}{VIEW}/launch-party/").json() == expected("launch-party")
    assert Entry.from_fields(store.hgetall(key)).data["title"] == "Product launch party"


def test_miss_wait_is_bounded(serve_api, demo):
    """A miss waits at most api.miss_wait_timeout, then answers 504."""
    url = serve_api(api={"miss_wait_timeout": 0.3})
    demo.upstream.set_latency(1.0)
    r = get(f"{url}{VIEW}/launch-party/")
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "fetch_timeout"


def test_redis_unreachable_is_503(serve_api):
    """With Redis down the API answers a JSON 503 at once, and /healthz stays up."""
    url = serve_api(redis={"url": f"redis://127.0.0.1:{free_port()}/0", "socket_timeout": 0.5})
    r = requests.get(f"{url}{VIEW}/launch-party/", timeout=10)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "store_unavailable"
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_wrong_token_is_an_upstream_error(api, demo):
    """Upstream refusing our token (401) is a 502, and the token appears in no response."""
    token = demo.upstream.token
    demo.upstream.token = "rotated"
    try:
        r = get(f"{api}{VIEW}/team-standup/")
    finally:
        demo.upstream.token = token
    assert r.status_code == 502
    assert token not in r.text


def test_readyz_without_redis_is_503_with_detail(serve_api):
    """With Redis unreachable /readyz answers 503 and says the Redis check failed."""
    url = serve_api(redis={"url": f"redis://127.0.0.1:{free_port()}/0", "socket_timeout": 0.5})
    r = requests.get(f"{url}/readyz", timeout=10)
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert r.json()["checks"]["redis"]["ok"] is False


def test_readyz_without_beat_is_503(api):
    """The session stack runs no beat: /readyz says beat is not ticking."""
    body = requests.get(f"{api}/readyz", timeout=10).json()
    assert body["status"] == "not_ready"
    assert body["checks"]["workers"]["ok"] is True
    assert body["checks"]["beat"]["ok"] is False


def test_an_upstream_trickling_its_answer_cannot_hold_a_fetch_past_its_deadline():
    """An upstream that sends a byte every 0.3 s never trips the 1 s read timeout; the
    fetch still ends with UpstreamTimeout at its deadline (a thread cannot be killed, so
    the client keeps every request within the time its fetch has left)."""
    done = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n")
            while not done.wait(0.3):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    client = UpstreamClient(
        Endpoint(f"http://127.0.0.1:{listener.getsockname()[1]}", {}), 1.0, 1.0)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            client.get("/slow", deadline=started + 1.5)
        assert time.monotonic() - started < 2.5
    finally:
        done.set()
        listener.close()
