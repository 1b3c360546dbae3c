"""HTTP caching over real sockets: validators, 304, HEAD, serve-stale, the OpenAPI contract."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api import openapi
from shared.store.keys import Keys
from tests.helpers import PREFIX, VIEW, eventually, expected, get

KEYS = Keys(PREFIX)


def stale_by(store, event_id: str, seconds: float) -> None:
    """Make an event's cached parts stale by ``seconds``, as time would."""
    for kind in ("event", "subscriptions"):
        store.hset(KEYS.entry(f"c42:{kind}:{event_id}"), "fresh_until", repr(time.time() - seconds))


def test_if_none_match_round_trip(api):
    """The ETag of a 200 brings a 304 with no body and the caching headers."""
    first = get(f"{api}{VIEW}/team-standup/")
    etag = first.headers["ETag"]
    again = requests.get(f"{api}{VIEW}/team-standup/", headers={"If-None-Match": etag},
                         timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Status"].startswith("cachedproxy; hit; ttl=")
    assert again.headers["Cache-Control"].startswith("max-age=")
    assert "Age" in again.headers


def test_etag_is_the_same_from_two_api_processes(api, serve_api):
    """Two API processes give the same ETag for unchanged data; a change gives another."""
    one = get(f"{api}{VIEW}/launch-party/").headers["ETag"]
    other = serve_api()
    assert get(f"{other}{VIEW}/launch-party/").headers["ETag"] == one


def test_etag_changes_when_the_data_changes(api, demo, store):
    """After upstream changes and the entry is refetched, the ETag differs."""
    before = get(f"{api}{VIEW}/board-meeting/").headers["ETag"]
    demo.upstream.put_event("board-meeting", "Board meeting (moved)", None)
    stale_by(store, "board-meeting", 10_000)
    after = get(f"{api}{VIEW}/board-meeting/")
    assert after.json()["title"] == "Board meeting (moved)"
    assert after.headers["ETag"] != before


def test_head_has_the_headers_and_no_body(api):
    """HEAD answers like GET without the body."""
    get(f"{api}{VIEW}/team-standup/")
    r = requests.head(f"{api}{VIEW}/team-standup/", timeout=10)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["ETag"] and r.headers["Cache-Status"].startswith("cachedproxy; hit")


def test_stale_while_revalidate_serves_at_once_and_refreshes_once(api, demo, store):
    """Within the grace window, stale data is served at once to everyone, and exactly one
    refresh goes upstream for all of them."""
    get(f"{api}{VIEW}/launch-party/")
    stale_by(store, "launch-party", 5)
    demo.upstream.set_latency(0.5)  # the refresh is slow; nobody waits for it
    start = threading.Barrier(20)

    def one(_: int) -> requests.Response:
        start.wait(10)
        return get(f"{api}{VIEW}/launch-party/")

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(one, range(20)))
    assert all(r.status_code == 200 and r.json() == expected("launch-party") for r in responses)
    assert all("fwd=stale" in r.headers["Cache-Status"] and
               "detail=stale-while-revalidate" in r.headers["Cache-Status"] for r in responses)
    assert all(r.elapsed.total_seconds() < 0.5 for r in responses)
    # The refresh has stored what it found once its flight ends (upstream answering its
    # last request comes a moment before).
    eventually(lambda: not any(store.hexists(KEYS.locks(), f"c42:{kind}:launch-party")
                               for kind in ("event", "subscriptions")),
               5, "the refresh of both parts done")
    assert demo.upstream.count("event", "launch-party", 304) == 1
    assert demo.upstream.count("subscriptions", "launch-party", 304) == 3
    assert demo.upstream.count("event", "launch-party") == 2  # the fill, and one refresh
    assert demo.upstream.count("subscriptions", "launch-party") == 6
    assert "hit" in get(f"{api}{VIEW}/launch-party/").headers["Cache-Status"]


@pytest.mark.parametrize(
    ("fault", "status_param"),
    [({"mode": "error", "status": 500}, "fwd-status=500"),
     ({"mode": "error", "status": 503}, "fwd-status=503"),
     ({"mode": "malformed"}, "fwd-status=200"),
     ({"mode": "timeout", "seconds": 5}, None)],
)
def test_stale_if_error_serves_the_last_good_data(api, demo, store, fault, status_param):
    """Past the grace window with upstream failing, the last good data is served with a
    stale Cache-Status, and the failure never replaces it."""
    get(f"{api}{VIEW}/launch-party/")
    stale_by(store, "launch-party", 600)
    demo.upstream.set_fault_from(fault | {"kind": "event"})
    r = get(f"{api}{VIEW}/launch-party/")
    assert r.status_code == 200 and r.json() == expected("launch-party")
    assert "fwd=stale" in r.headers["Cache-Status"]
    assert "detail=stale-if-error" in r.headers["Cache-Status"]
    if status_param:
        assert status_param in r.headers["Cache-Status"]
    assert r.elapsed.total_seconds() < 4  # api.stale_wait_timeout, not the 10 s miss wait
    assert r.headers["Cache-Control"].startswith("max-age=0,")


def test_past_stale_if_error_nothing_usable_is_an_error(api, demo, store):
    """Data older than stale-if-error is not served: the client gets the 502."""
    get(f"{api}{VIEW}/launch-party/")
    stale_by(store, "launch-party", 86400 + 60)
    demo.upstream.set_fault_from({"mode": "error", "status": 500, "kind": "event"})
    r = get(f"{api}{VIEW}/launch-party/")
    assert r.status_code == 502
    assert r.headers["Cache-Status"] == "cachedproxy; fwd=miss; fwd-status=500"


def test_negative_cache_hit_says_so(api, demo):
    """A remembered 404 is answered from the cache, and says so."""
    assert get(f"{api}{VIEW}/nobody-knows/").headers["Cache-Status"] == (
        "cachedproxy; fwd=miss; fwd-status=404; stored")
    again = get(f"{api}{VIEW}/nobody-knows/")
    assert again.status_code == 404
    assert again.headers["Cache-Status"] == "cachedproxy; hit"
    assert demo.upstream.count("event", "nobody-knows") == 1


def test_a_stale_remembered_404_is_answered_while_upstream_is_asked_again(api, demo, store):
    """Past its freshness (within stale-while-revalidate) a remembered 404 is answered at
    once while one fetch asks upstream again; then it is a hit again."""
    assert get(f"{api}{VIEW}/nobody-either/").status_code == 404
    stale_by(store, "nobody-either", 5)
    started = time.monotonic()
    demo.upstream.set_latency(2)
    try:
        stale = get(f"{api}{VIEW}/nobody-either/")
        assert stale.status_code == 404 and time.monotonic() - started < 1.5
        assert stale.json()["error"]["code"] == "not_found"
        eventually(lambda: demo.upstream.count("event", "nobody-either") == 2, 10,
                   "the remembered 404 asked again")
    finally:
        demo.upstream.set_latency(0)
    eventually(lambda: get(f"{api}{VIEW}/nobody-either/").headers.get("Cache-Status") ==
               "cachedproxy; hit", 10, "a hit again")


# The document /openapi.json serves (tests/unit/test_api_http.py checks they are equal).
schema = schemathesis.openapi.from_dict(openapi.spec())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_honours_its_openapi_description(case, api):
    """For generated inputs the API never answers 5xx, and every answer matches the
    OpenAPI description (status, headers, body). /readyz's 503 is its documented answer
    while not ready (this stack runs no beat), and so is 503 budget_spent for generated
    names missed faster than misses may spend the upstream's budget (GitHub's demo
    reports its limit as GitHub does): there only the description is checked."""
    response = case.call(base_url=api)
    promised = case.operation.path == "/readyz" or (
        response.status_code == 503 and b'"budget_spent"' in response.content)
    case.validate_response(response, excluded_checks=[not_a_server_error] if promised else [])
