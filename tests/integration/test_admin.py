"""The admin API against a real Redis and worker: off without a token, 401 without the
right one, entries listed, purges that make the next read a miss with upstream's data,
a refresh on demand."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from shared.config.settings import PROJECT_DIR
from shared.policy.status import minute_of
from shared.store.entry import Entry
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from shared.store.status import forget_old_counts
from tests.helpers import PREFIX, VIEW, eventually, expected, get, make_live

TOKEN = "admin-token-for-tests-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(serve_api) -> str:
    return serve_api(admin={"token": TOKEN})


def test_without_a_token_configured_the_admin_api_does_not_exist(serve_api):
    """Every path under /admin/, with any method, is the same JSON 404 (never a 405 that
    would tell which methods a path has)."""
    api = serve_api(admin={"token": ""})
    for method, path in [("GET", "/admin/entries"), ("POST", "/admin/purge"),
                         ("DELETE", "/admin/entries/c42:event:x"), ("GET", "/admin/nope"),
                         ("GET", "/admin/purge"), ("PUT", "/admin/entries"),
                         ("GET", "/admin/refresh/c42:event:x"), ("GET", "/admin/")]:
        r = requests.request(method, f"{api}{path}", headers=AUTH, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN,
                                    f"Bearer {TOKEN}x"])
def test_a_missing_or_wrong_token_is_401_with_www_authenticate(admin, header):
    headers = {"Authorization": header} if header else {}
    r = requests.get(f"{admin}/admin/entries", headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="cachedproxy admin"'
    assert r.json()["error"]["code"] == "unauthorized"


def test_a_failing_entry_shows_its_failures_last_error_and_retry(admin, api, store):
    """An operator sees why a live entry is old: refreshes failed in a row, the last
    one's error and when it is retried; times also as RFC 3339. A refresh that works
    clears them."""
    get(f"{api}{VIEW}/team-standup/")
    make_live(store, PREFIX, "team-standup")
    schedule = Schedule(store, Keys(PREFIX))
    resource = "c42:event:team-standup"
    schedule.note_failure(resource, "upstream_error: upstream answered 503")
    schedule.note_failure(resource, "upstream_timeout: upstream did not answer in time")
    retry_at = time.time() + 120
    schedule.postpone(resource, retry_at)

    def entry() -> dict:
        r = requests.get(f"{admin}/admin/entries", params={"prefix": resource},
                         headers=AUTH, timeout=10)
        [found] = r.json()["entries"]
        return found

    failing = entry()
    assert failing["failures"] == 2
    assert failing["last_error"] == "upstream_timeout: upstream did not answer in time"
    assert failing["next_retry"] == failing["next_refresh"] == pytest.approx(retry_at, abs=0.01)
    for name in ("fetched_at", "checked_at", "fresh_until", "next_refresh", "next_retry",
                 "last_read"):
        if failing[name] is not None:
            when = datetime.fromisoformat(failing[f"{name}_rfc3339"])
            assert when.timestamp() == pytest.approx(failing[name], abs=0.001), name
    schedule.succeeded(resource, time.time() + 60)
    working = entry()
    assert (working["failures"], working["last_error"], working["next_retry"],
            working["next_retry_rfc3339"]) == (0, None, None, None)


def test_an_entry_s_bytes_are_all_it_holds(admin, api, store):
    """Netflix's 150 repositories (35 kB kept): an operator capping memory reads what the
    entry holds, not Redis's estimate from a sample of its fields."""
    assert requests.get(f"{api}/view/top/1/stars", timeout=20).ok
    [entry] = requests.get(f"{admin}/admin/entries", params={"prefix": "github:repos:"},
                           headers=AUTH, timeout=10).json()["entries"]
    assert entry["bytes"] >= len(store.hget(f"{PREFIX}:entry:github:repos:Netflix", "data"))


def test_entries_are_listed_a_page_at_a_time(admin, api, store):
    get(f"{api}{VIEW}/team-standup/")
    get(f"{api}{VIEW}/quiet-evening/")
    make_live(store, PREFIX, "team-standup")
    r = requests.get(f"{admin}/admin/entries", params={"prefix": "c42:"}, headers=AUTH,
                     timeout=10)
    assert r.status_code == 200
    listed = r.json()["entries"]
    assert [e["resource"] for e in listed] == [
        "c42:event:quiet-evening", "c42:event:team-standup",
        "c42:subscriptions:quiet-evening", "c42:subscriptions:team-standup"]
    first = listed[1]
    assert first["status"] == 200 and first["fresh"] and first["live"]
    assert first["bytes"] > 0 and first["fresh_until"] > first["checked_at"]
    assert first["validators"] and first["next_refresh"] > first["checked_at"]
    page = requests.get(f"{admin}/admin/entries", headers=AUTH, timeout=10, params={
        "prefix": "c42:event:", "limit": 1}).json()
    assert [e["resource"] for e in page["entries"]] == ["c42:event:quiet-evening"]
    after = requests.get(f"{admin}/admin/entries", headers=AUTH, timeout=10, params={
        "prefix": "c42:event:", "limit": 1, **page["next"]}).json()
    assert [e["resource"] for e in after["entries"]] == ["c42:event:team-standup"]
    bad = requests.get(f"{admin}/admin/entries", params={"limit": "0"}, headers=AUTH,
                       timeout=10)
    assert bad.status_code == 400


def test_purging_a_view_makes_the_next_read_a_miss_with_upstreams_data(admin, api, demo):
    assert get(f"{api}{VIEW}/team-standup/").json() == expected("team-standup")
    demo.upstream.put_event("team-standup", "Stand-up, moved", None)
    assert get(f"{api}{VIEW}/team-standup/").json()["title"] == "Team stand-up"  # cached
    r = requests.post(f"{admin}/admin/purge", headers=AUTH, timeout=10, json={
        "view": "events-with-subscriptions", "params": {"id": "team-standup"}})
    assert r.status_code == 200
    assert r.json() == {"purged": ["c42:event:team-standup",
                                   "c42:subscriptions:team-standup"]}
    after = get(f"{api}{VIEW}/team-standup/")
    assert after.json()["title"] == "Stand-up, moved"
    assert after.headers["Cache-Status"].startswith("cachedproxy; fwd=miss")


def test_purging_an_upstream_or_one_resource(admin, api, store):
    get(f"{api}{VIEW}/team-standup/")
    get(f"{api}{VIEW}/quiet-evening/")
    one = requests.delete(f"{admin}/admin/entries/c42:event:quiet-evening", headers=AUTH,
                          timeout=10)
    assert one.json() == {"purged": ["c42:event:quiet-evening"]}
    again = requests.delete(f"{admin}/admin/entries/c42:event:quiet-evening", headers=AUTH,
                            timeout=10)
    assert again.status_code == 404
    not_a_resource = requests.delete(f"{admin}/admin/entries/nothing", headers=AUTH,
                                     timeout=10)
    assert not_a_resource.status_code == 400
    everything = requests.post(f"{admin}/admin/purge", json={"upstream": "c42"},
                               headers=AUTH, timeout=10)
    assert sorted(everything.json()["purged"]) == [
        "c42:event:team-standup", "c42:subscriptions:quiet-evening",
        "c42:subscriptions:team-standup"]
    assert not list(store.scan_iter(Keys(PREFIX).entry("c42:") + "*"))
    scheduled = set(store.zrange(Keys(PREFIX).schedule(), 0, -1))
    assert not scheduled & {"c42:event:team-standup", "c42:subscriptions:quiet-evening",
                            "c42:subscriptions:team-standup"}
    for body in ({}, {"upstream": "nope"}, {"view": "nope"}, {"upstream": "c42", "prefix": "x"},
                 {"view": "events-with-subscriptions", "params": {"id": ".."}}):
        r = requests.post(f"{admin}/admin/purge", json=body, headers=AUTH, timeout=10)
        assert r.status_code in (400, 404) and "error" in r.json(), body


def test_a_purge_body_is_json_whatever_its_content_type(admin, api):
    """``curl -d '{...}'`` sends a form's Content-Type: the JSON body is read all the
    same; a body that is not JSON is a 400 that says what to send."""
    get(f"{api}{VIEW}/team-standup/")
    form = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(f"{admin}/admin/purge", data='{"tag": "event:team-standup"}',
                      headers=form, timeout=10)
    assert r.status_code == 200
    assert sorted(r.json()["purged"]) == ["c42:event:team-standup",
                                          "c42:subscriptions:team-standup"]
    for body in ("upstream=c42", "{", "\xff", ""):
        r = requests.post(f"{admin}/admin/purge", data=body, headers=form, timeout=10)
        assert r.status_code == 400, body
        assert r.json()["error"]["message"].startswith("send a JSON object"), body


def test_purging_by_tag_takes_every_kind_of_one_event_and_nothing_else(admin, api, demo):
    """The catalogue tags an event's resources "event:<id>": one purge by tag takes the
    event and its subscriptions; another event stays cached."""
    get(f"{api}{VIEW}/team-standup/")
    get(f"{api}{VIEW}/quiet-evening/")
    demo.upstream.put_event("team-standup", "Stand-up, moved", ["Zoë"])
    r = requests.post(f"{admin}/admin/purge", json={"tag": "event:team-standup"},
                      headers=AUTH, timeout=10)
    assert r.status_code == 200
    assert sorted(r.json()["purged"]) == ["c42:event:team-standup",
                                          "c42:subscriptions:team-standup"]
    after = get(f"{api}{VIEW}/team-standup/")
    assert after.json() == {"id": "team-standup", "title": "Stand-up, moved", "names": ["Zoë"]}
    assert get(f"{api}{VIEW}/quiet-evening/").headers["Cache-Status"].startswith(
        "cachedproxy; hit")
    for tag in ("nope:team-standup", "event:", "event:a b"):
        r = requests.post(f"{admin}/admin/purge", json={"tag": tag}, headers=AUTH, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", tag


def test_entries_by_upstream_and_live_or_idle_with_their_tags(admin, api, store):
    get(f"{api}{VIEW}/team-standup/")
    make_live(store, PREFIX, "team-standup")
    store.zrem(Keys(PREFIX).schedule(), "c42:event:team-standup")  # no longer refreshed ahead

    def listed(**params: str) -> list[dict]:
        r = requests.get(f"{admin}/admin/entries", params=params, headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["entries"]

    idle = listed(upstream="c42", live="false")
    assert [e["resource"] for e in idle] == ["c42:event:team-standup"]
    assert idle[0]["upstream"] == "c42" and idle[0]["tags"] == ["event:team-standup"]
    assert not idle[0]["live"] and idle[0]["next_refresh"] is None
    assert [e["resource"] for e in listed(upstream="c42", live="true")] == [
        "c42:subscriptions:team-standup"]
    assert len(listed(upstream="c42")) == 2 and listed(upstream="github") == []
    for params, status in (({"upstream": "nope"}, 404), ({"live": "maybe"}, 400),
                           ({"upstream": "c42", "prefix": "github:"}, 400)):
        r = requests.get(f"{admin}/admin/entries", params=params, headers=AUTH, timeout=10)
        assert r.status_code == status and "error" in r.json(), params


def test_refresh_now_is_enqueued_and_done(admin, api, store):
    get(f"{api}{VIEW}/team-standup/")
    key = Keys(PREFIX).entry("c42:event:team-standup")
    before = Entry.from_fields(store.hgetall(key))
    r = requests.post(f"{admin}/admin/refresh/c42:event:team-standup", headers=AUTH,
                      timeout=10)
    assert r.status_code == 202 and r.json()["resource"] == "c42:event:team-standup"

    def refreshed() -> bool:
        entry = Entry.from_fields(store.hgetall(key))
        return entry is not None and entry.checked_at > before.checked_at

    eventually(refreshed, 10, "the refresh done by the worker")


def test_the_command_line_lists_and_purges(api, env, store):
    """`python -m api.admin entries` prints one JSON line an entry; `purge --upstream`
    empties that upstream's entries."""
    get(f"{api}{VIEW}/team-standup/")
    make_live(store, PREFIX, "team-standup")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "api.admin", *args], env=env,
                              cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)

    listed = run("entries", "--prefix", "c42:event:")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["resource"] for r in rows] == ["c42:event:team-standup"]
    assert rows[0]["status"] == 200 and rows[0]["tags"] == ["event:team-standup"]
    assert run("entries", "--upstream", "c42", "--idle").stdout == ""
    assert len(run("entries", "--upstream", "c42", "--live").stdout.splitlines()) == 2
    by_tag = run("purge", "--tag", "event:team-standup")
    assert sorted(json.loads(by_tag.stdout)["purged"]) == [
        "c42:event:team-standup", "c42:subscriptions:team-standup"]
    get(f"{api}{VIEW}/team-standup/")
    purged = run("purge", "--upstream", "c42")
    assert purged.returncode == 0
    assert sorted(json.loads(purged.stdout)["purged"]) == [
        "c42:event:team-standup", "c42:subscriptions:team-standup"]
    assert run("entries").stdout == ""
    refused = run("purge", "--upstream", "nope")
    assert refused.returncode == 2 and json.loads(refused.stderr)["error"]["code"] == "not_found"


def test_a_fetch_under_way_cannot_put_back_what_a_purge_removed(admin, api, demo, store):
    """Delete on write: a writer changes data upstream and purges; a fetch that was
    already under way with the old data is dropped and asks again, so the next read
    sees the new data."""
    get(f"{api}{VIEW}/team-standup/")
    purge = {"view": "events-with-subscriptions", "params": {"id": "team-standup"}}
    requests.post(f"{admin}/admin/purge", json=purge, headers=AUTH, timeout=10)
    demo.upstream.reset()  # forget the first read's request: wait for the miss's below
    # The miss's fetch is slow and answered from the data as it was when it arrived:
    # the write lands while it is on its way back.
    demo.upstream.set_latency(0.8, answer_first=True)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, f"{api}{VIEW}/team-standup/")
        assert demo.upstream.wait_for_request("event", "team-standup", timeout=10)
        demo.upstream.put_event("team-standup", "Written meanwhile", None)
        requests.post(f"{admin}/admin/purge", json=purge, headers=AUTH, timeout=10)
        answered = pending.result(timeout=20)
    assert answered.status_code == 200
    assert answered.json()["title"] == "Written meanwhile"
    demo.upstream.set_latency(0)
    assert get(f"{api}{VIEW}/team-standup/").json()["title"] == "Written meanwhile"


def test_upstreams_show_one_failing_since_its_first_failure_and_back(admin, api, demo):
    """GET /admin/upstreams: every upstream in name order; an upstream answering 503
    becomes failing after three failures in a row, with when it began, the last error
    and the next probe, and answering again at its next answer; every request it was
    sent is counted in the hour's budget use."""

    def upstreams() -> dict[str, dict]:
        r = requests.get(f"{admin}/admin/upstreams", headers=AUTH, timeout=10)
        assert r.status_code == 200
        return {row["upstream"]: row for row in r.json()["upstreams"]}

    first = upstreams()
    assert list(first) == ["c42", "github"]
    assert first["c42"]["state"] == "answering" and first["c42"]["failures"] == 0
    started = time.time()
    demo.upstream.set_fault_from({"mode": "error", "status": 503})
    for event in ("team-standup", "quiet-evening"):  # two fetches each: event, subscriptions
        assert get(f"{api}{VIEW}/{event}/").status_code >= 500
    eventually(lambda: upstreams()["c42"]["state"] == "failing", 10, "c42 failing")
    failing = upstreams()["c42"]
    since = datetime.fromisoformat(failing["failing_since"]).timestamp()
    assert started - 1 <= since <= time.time()
    assert failing["last_error"] == "upstream_error: upstream answered 503"
    assert datetime.fromisoformat(failing["next_probe"]).timestamp() > since
    sent = sum(n for kind in demo.upstream.counters().values() for by_id in kind.values()
               for n in by_id.values())
    assert failing["budget"]["spent_last_hour"] == sent >= 4
    assert upstreams()["github"]["state"] == "answering"  # one upstream's trouble only
    demo.upstream.set_fault(None)
    assert get(f"{api}{VIEW}/launch-party/").status_code == 200  # a miss still asks
    eventually(lambda: upstreams()["c42"]["state"] == "answering", 10, "c42 answering")
    back = upstreams()["c42"]
    assert (back["failures"], back["failing_since"], back["last_error"]) == (0, None, None)


def test_the_per_minute_counts_past_the_hour_are_forgotten_and_carry_no_ttl(store):
    """The counts behind the last hour (requests per upstream, answers per view) are
    hashes without a TTL (only entries may be evicted); the plan task's sweep deletes
    the minutes before the hour and nothing else."""
    keys = Keys(PREFIX)
    now = time.time()
    current = minute_of(now)
    spent, outcomes = keys.spent("c42"), keys.outcomes()
    try:
        store.hset(spent, mapping={str(current): 4, str(current - 59): 2,
                                   str(current - 60): 1, str(current - 600): 9})
        # (the session's API adds its own answers to the same hash meanwhile)
        store.hset(outcomes, mapping={f"{current}|a-view|hit": 3,
                                      f"{current - 61}|a-view|hit": 5})
        assert forget_old_counts(store, keys, ["c42", "github"], now) == 3
        assert sorted(store.hkeys(spent)) == sorted([str(current), str(current - 59)])
        assert [f for f in store.hkeys(outcomes) if "a-view" in f] == [f"{current}|a-view|hit"]
        assert store.pttl(spent) == store.pttl(outcomes) == -1
    finally:
        store.delete(spent)
        store.hdel(outcomes, f"{current}|a-view|hit")
