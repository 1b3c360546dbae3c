"""API keys and rate limits against real API processes sharing one Redis: no key 401,
a valid key 200, a client over its limit 429 on either process with a Retry-After that
holds, while another client is unaffected; keys rotated live."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from launcher.services import free_port
from shared.config.settings import PROJECT_DIR, Settings
from shared.policy.access import new_key
from tests.harness import start_api, stop
from tests.helpers import VIEW, eventually

KEY_A, LINE_A = new_key("alpha")
KEY_B, LINE_B = new_key("beta")
LIMIT = "3 per 3 seconds"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def two_apis(env: dict[str, str], worker: subprocess.Popen, tmp_path: Path
             ) -> Iterator[tuple[str, str]]:
    """Two API servers (python -m api, one process each) with keys on and a limit."""
    procs, urls = [], []
    for n in range(2):
        port = free_port()
        with (tmp_path / f"api{n}.log").open("w") as out:
            procs.append(start_api({**env, "API_PORT": str(port), "API_WORKERS": "1",
                                    "API_REQUIRE_KEYS": "on",
                                    "API_KEYS": f"{LINE_A},{LINE_B}",
                                    "API_RATE_LIMIT": LIMIT},
                                   stdout=out, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield urls[0], urls[1]
    finally:
        stop(procs)
    for n in range(2):  # the keys' names are logged, never the keys
        text = (tmp_path / f"api{n}.log").read_text()
        assert KEY_A not in text and KEY_B not in text


def test_keys_and_a_limit_shared_by_two_api_processes(two_apis, store):
    one, two = two_apis
    url = f"{VIEW}/team-standup/"
    for key in store.scan_iter("cptest:ratelimit*"):
        store.delete(key)
    r = requests.get(one + url, timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"
    assert requests.get(one + url, headers=auth(KEY_A + "x"), timeout=10).status_code == 401
    first = requests.get(one + url, headers=auth(KEY_A), timeout=10)
    assert first.status_code == 200 and first.headers["X-Content-Type-Options"] == "nosniff"
    assert "/" not in first.headers.get("Server", "")  # no server version disclosed
    # Two more on the other process, one of them a 304: 3 of 3 used.
    assert requests.get(two + url, headers=auth(KEY_A), timeout=10).status_code == 200
    assert requests.get(two + url, timeout=10, headers={
        **auth(KEY_A), "If-None-Match": first.headers["ETag"]}).status_code == 304
    over = requests.get(one + url, headers=auth(KEY_A), timeout=10)
    refused_at = time.monotonic()
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    retry = int(over.headers["Retry-After"])
    assert 1 <= retry <= 3
    assert over.headers["RateLimit-Policy"] == '"3-per-3s";q=3;w=3'
    assert over.headers["RateLimit"] == f'"3-per-3s";r=0;t={retry}'
    assert requests.get(two + url, headers=auth(KEY_A), timeout=10).status_code == 429
    for api in (one, two):  # another client is not affected
        assert requests.get(api + url, headers=auth(KEY_B), timeout=10).status_code == 200
    eventually(lambda: requests.get(two + url, headers=auth(KEY_A),
                                    timeout=10).status_code == 200, 6, "the window to move")
    waited = time.monotonic() - refused_at
    assert retry - 1.0 <= waited <= retry + 0.5, (retry, waited)


def test_keys_rotate_live(settings: Settings, worker):
    """A key added to the settings in force is taken at once; a key removed is refused
    from the next request on, without a restart."""
    new, new_line = new_key("alpha-2026")
    current = [settings.replace(access={"require_keys": "on", "keys": LINE_A})]
    server = threaded_wsgi_server(app_from_settings(current[0], lambda: current[0]),
                                  "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}{VIEW}/team-standup/"
    try:
        assert requests.get(api, headers=auth(KEY_A), timeout=10).status_code == 200
        assert requests.get(api, headers=auth(new), timeout=10).status_code == 401
        current[0] = current[0].replace(access={"keys": f"{LINE_A},{new_line}"})
        assert requests.get(api, headers=auth(new), timeout=10).status_code == 200
        current[0] = current[0].replace(access={"keys": new_line})
        r = requests.get(api, headers=auth(KEY_A), timeout=10)
        assert r.status_code == 401 and json.loads(r.content)["error"]["code"] == "unauthorized"
        assert requests.get(api, headers=auth(new), timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_keys_count_on_loopback_once_configured_and_an_open_api_off_loopback_refuses_to_start(
        env, worker, tmp_path):
    """A proxy on the same host connects from 127.0.0.1: with keys configured and the
    default API_REQUIRE_KEYS, a request without one is 401 there too. Listening off
    loopback with no key configured, the API does not start."""
    port = free_port()
    proc = start_api({**env, "API_PORT": str(port), "API_WORKERS": "1", "API_KEYS": LINE_A})
    try:
        api = f"http://127.0.0.1:{port}{VIEW}/team-standup/"
        r = requests.get(api, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert requests.get(api, headers=auth(KEY_A), timeout=10).status_code == 200
    finally:
        stop([proc])
    refused = subprocess.run(
        [sys.executable, "-m", "api"], env={**env, "API_HOST": "0.0.0.0",
                                            "API_PORT": str(free_port()), "API_KEYS": ""},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "API_REQUIRE_KEYS=off" in refused.stderr


def test_a_client_over_its_miss_limit_cannot_turn_unknown_ids_against_the_upstream(
        env, worker, demo, tmp_path):
    """With API_MISS_RATE_LIMIT=5/second, 300 distinct unknown ids from one key cost the
    upstream a few requests, that key gets 429s with Retry-After, and another key's reads
    of a cached view stay 200 throughout."""
    port = free_port()
    with (tmp_path / "api.log").open("w") as out:
        proc = start_api({**env, "API_PORT": str(port), "API_WORKERS": "1",
                          "API_KEYS": f"{LINE_A},{LINE_B}", "API_MISS_RATE_LIMIT": "5/second"},
                         stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}{VIEW}"
    try:
        assert requests.get(f"{base}/team-standup/", headers=auth(KEY_B),
                            timeout=10).status_code == 200
        done, others = threading.Event(), []

        def read_cached() -> None:
            with requests.Session() as session:
                while not done.is_set():
                    others.append(session.get(f"{base}/team-standup/", headers=auth(KEY_B),
                                              timeout=10).status_code)

        reader = threading.Thread(target=read_cached)
        reader.start()
        with requests.Session() as session, ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(
                lambda n: session.get(f"{base}/no-such-event-{n}/", headers=auth(KEY_A),
                                      timeout=30), range(300)))
        done.set()
        reader.join(10)
    finally:
        stop([proc])
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {404, 429} and statuses[429] >= 200, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1 and "RateLimit" in refused.headers
    asked = demo.upstream.counters()["event"]
    event_requests = sum(sum(by_status.values()) for event, by_status in asked.items()
                         if event.startswith("no-such-event-"))
    assert 1 <= event_requests <= 40, event_requests
    assert others and set(others) == {200}, Counter(others)
