"""GET /events-with-subscriptions/<id>/ end to end: API -> Redis -> worker -> demo C42."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.store.keys import Keys
from tests.helpers import PREFIX, SAMPLES, VIEW, eventually, expected, expire, get


@pytest.mark.parametrize("event_id", sorted(SAMPLES))
def test_view_joins_event_title_and_subscriber_names(api, demo, event_id):
    """Title and all subscribers' first names, in upstream order, across every page."""
    r = get(f"{api}{VIEW}/{event_id}/")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.json() == expected(event_id)
    pages = max(1, -(-len(SAMPLES[event_id].subscribers) // 10))
    assert demo.upstream.count("subscriptions", event_id) == pages


def test_trailing_slash_is_optional(api):
    """The path works with and without its trailing slash."""
    assert get(f"{api}{VIEW}/team-standup").json() == expected("team-standup")
    assert get(f"{api}{VIEW}/team-standup/").json() == expected("team-standup")


def test_concurrent_cold_requests_cause_one_upstream_pass(api, demo):
    """100 simultaneous misses: one event request, one pass over the 3 subscription pages."""
    start = threading.Barrier(100)

    def one(_: int) -> tuple[int, object]:
        start.wait(timeout=10)
        r = get(f"{api}{VIEW}/launch-party/")
        return r.status_code, r.json()

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    assert results == [(200, expected("launch-party"))] * 100
    assert demo.upstream.counters() == {
        "event": {"launch-party": {"200": 1}},
        "subscriptions": {"launch-party": {"200": 3}},
    }


def test_second_request_is_a_hit(api, demo):
    """Once cached, a view is served without any upstream request."""
    assert get(f"{api}{VIEW}/launch-party/").status_code == 200
    before = demo.upstream.counters()
    for _ in range(5):
        assert get(f"{api}{VIEW}/launch-party/").json() == expected("launch-party")
    assert demo.upstream.counters() == before


def test_expired_entry_is_revalidated_with_304_and_kept(api, demo, store):
    """Past its TTL an entry is refreshed conditionally: 304s keep the data, extend freshness."""
    assert get(f"{api}{VIEW}/launch-party/").status_code == 200
    key = Keys(PREFIX).entry("c42:subscriptions:launch-party")
    before = store.hgetall(key)
    expire(store, "launch-party")
    assert get(f"{api}{VIEW}/launch-party/").json() == expected("launch-party")
    after = store.hgetall(key)
    assert demo.upstream.counters() == {
        "event": {"launch-party": {"200": 1, "304": 1}},
        "subscriptions": {"launch-party": {"200": 3, "304": 3}},
    }
    assert after["data"] == before["data"] and after["fetched_at"] == before["fetched_at"]
    assert float(after["fresh_until"]) > float(before["checked_at"])
    assert float(after["checked_at"]) > float(before["checked_at"])


def test_weak_etag_and_changed_event_after_expiry(api, demo, store):
    """A change upstream is picked up at the next refresh; weak ETags revalidate too."""
    assert get(f"{api}{VIEW}/board-meeting/").json() == expected("board-meeting")
    expire(store, "board-meeting")
    assert get(f"{api}{VIEW}/board-meeting/").status_code == 200
    assert demo.upstream.count("event", "board-meeting", 304) == 1
    demo.upstream.put_event("board-meeting", "Board meeting (moved)", ["Ada", "Zoë"])
    expire(store, "board-meeting")
    body = get(f"{api}{VIEW}/board-meeting/").json()
    assert body == {
        "id": "board-meeting", "title": "Board meeting (moved)", "names": ["Ada", "Zoë"]
    }


def test_unknown_event_is_404_and_remembered(api, demo):
    """An upstream 404 is a JSON 404, cached briefly: the next request asks upstream nothing."""
    r = get(f"{api}{VIEW}/no-such-event/")
    assert r.status_code == 404
    assert r.json()["error"]["status"] == 404
    calls = demo.upstream.count("event", "no-such-event")
    assert calls == 1
    assert get(f"{api}{VIEW}/no-such-event/").status_code == 404
    assert demo.upstream.count("event", "no-such-event") == calls


@pytest.mark.parametrize("bad", ["...", "x" * 129, "%C3%A9t%C3%A9", "a%20b", "a:b", "%00"])
def test_invalid_ids_are_400(api, demo, bad):
    """Ids C42 could not have get a JSON 400, and cause no upstream request."""
    r = get(f"{api}{VIEW}/{bad}/")
    assert r.status_code == 400
    assert r.json()["error"] == {
        "status": 400, "code": "invalid_request",
        "message": "invalid id: use 1 to 128 letters, digits, '_', '-' or '.' (not only dots)",
    }
    assert demo.upstream.counters() == {}


def test_unknown_route_is_json_404(api):
    """Routes that do not exist are a JSON 404, not an HTML page."""
    r = get(f"{api}/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_healthz(api):
    """/healthz answers 200 while the process is alive."""
    assert get(f"{api}/healthz").json() == {"status": "ok"}


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_request_id_reaches_the_worker_log_of_the_fetch_it_caused(api, logs):
    """X-Request-ID is echoed (or generated), and the worker's log line for the fetch
    the request caused carries it."""
    r = requests.get(f"{api}{VIEW}/quiet-evening/", headers={"X-Request-ID": "req-42.a"},
                     timeout=20)
    assert r.headers["X-Request-ID"] == "req-42.a"
    generated = requests.get(f"{api}/nope", headers={"X-Request-ID": "bad id!"}, timeout=5)
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])

    def fetch_logged() -> bool:
        return any(line.get("event") == "fetched" and line.get("request_id") == "req-42.a"
                   and line.get("resource") == "c42:event:quiet-evening"
                   for line in json_lines(logs / "worker.log"))

    eventually(fetch_logged, 5, "the worker's fetch log line with the request id")
    api_lines = [line for line in json_lines(logs / "api.log")
                 if line.get("request_id") == "req-42.a" and line.get("event") == "request"]
    assert api_lines and api_lines[0]["status"] == 200
    assert api_lines[0]["cache"] == "miss" and api_lines[0]["duration_ms"] > 0


def test_logs_are_json_and_hold_no_secrets(api, demo, logs):
    """Every record the API and worker log is a JSON line; the upstream token is in none."""
    get(f"{api}{VIEW}/team-standup/")
    for name in ("api.log", "worker.log"):
        text = (logs / name).read_text()
        assert demo.upstream.token not in text
        records = [line for line in text.splitlines() if line.startswith("{")]
        assert records and all(json.loads(line)["level"] for line in records)
