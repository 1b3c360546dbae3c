"""Each API process's copies of the views it served last (api/copies.py), bounded; the
tracker that tells which changed (api/tracker.py); and while Redis is unreachable
(api/outage.py), one try of Redis per probe interval and, through the app, what clients
get."""

from __future__ import annotations

import json

import pytest
import redis

from api.app import create_app
from api.copies import Copies, Copy
from api.outage import PROBE_INTERVAL, Outage
from api.tracker import Tracker
from shared.config.settings import Settings
from tests.unit.apptools import NOW, StubReader, call

VIEW = "/events-with-subscriptions/e1/"
OTHER = "/events-with-subscriptions/e2/"


def copy(body: bytes = b"{}", etag: str = '"a"', fresh_until: float = 100.0) -> Copy:
    return Copy(body, etag, 50.0, fresh_until, 60.0)


def test_copies_keep_the_views_served_last_within_count_and_bytes():
    copies = Copies(count=2, max_bytes=10)
    copies.put(("v", "1"), copy(b"1234"))
    copies.put(("v", "2"), copy(b"1234"))
    assert copies.touch(("v", "1"), '"a"', 100.0, 60.0)  # served again: most recent
    copies.put(("v", "3"), copy(b"12"))
    assert copies.get(("v", "2")) is None and copies.get(("v", "1")) is not None
    copies.put(("v", "4"), copy(b"123456"))  # 4 + 2 + 6 bytes: the oldest goes
    assert copies.get(("v", "1")) is None and copies.bytes == 8
    copies.put(("v", "5"), copy(b"x" * 11))  # larger than the whole budget: not kept
    assert copies.get(("v", "5")) is None and copies.bytes == 8
    copies.put(("v", "3"), copy(b"1"))  # replaced, not counted twice
    assert copies.bytes == 7


def test_clearing_forgets_every_copy_and_what_it_was_made_of():
    """A catalogue change clears the copies: none is served in the old shape, and a
    change notice for an old resource finds nothing to drop."""
    copies = Copies()
    copies.put(("v", "1"), Copy(b"1234", '"a"', 50.0, 100.0, 60.0, ("r:1",)))
    copies.clear()
    assert copies.get(("v", "1")) is None and copies.bytes == 0
    copies.drop(["r:1"])
    copies.put(("v", "1"), copy(b"12"))
    assert copies.bytes == 2


def test_a_304_moves_a_copy_of_the_same_data_forward_and_nothing_else():
    copies = Copies()
    copies.put(("v", "1"), copy(fresh_until=100.0))
    assert copies.touch(("v", "1"), '"a"', 400.0, 300.0)
    assert copies.get(("v", "1")) == Copy(b"{}", '"a"', 50.0, 400.0, 300.0)
    assert not copies.touch(("v", "1"), '"b"', 500.0, 500.0)  # other data: needs its body
    assert not copies.touch(("v", "2"), '"a"', 500.0, 500.0)
    assert copies.get(("v", "1")).fresh_until == 400.0


@pytest.mark.parametrize(
    ("steps", "tries"),
    [
        # (time, event) -> whether Redis is tried at each "try"
        ([(0.0, "try")], [True]),
        ([(0.0, "fail"), (0.1, "try"), (0.49, "try"), (0.5, "try"), (0.6, "try")],
         [False, False, True, False]),
        ([(0.0, "fail"), (0.5, "try"), (0.5, "fail"), (0.9, "try"), (1.0, "try")],
         [True, False, True]),
        ([(0.0, "fail"), (0.1, "ok"), (0.1, "try"), (0.2, "try")], [True, True]),
    ],
)
def test_an_unreachable_redis_is_tried_once_per_probe_interval(steps, tries):
    outage, seen = Outage(lambda: None, lambda: 0.0, interval=0.5), []
    for at, event in steps:
        if event == "try":
            seen.append(outage.should_try(at))
        elif event == "fail":
            outage.failed(at)
        else:
            outage.succeeded()
    assert seen == tries


def test_redis_unreachable_serves_views_served_before_and_503_for_the_rest():
    """The view served before comes from the process's copy: same body and ETag,
    Cache-Status saying so, 304 to a matching If-None-Match; another view is 503
    store_unavailable; Redis is not asked again within the probe interval; once it
    answers, everything is read from it again."""
    reader = StubReader()
    settings = Settings()
    app = create_app(reader, lambda: settings)
    status, before, body = call(app, VIEW)
    assert status == 200
    reader.error = redis.ConnectionError("Connection refused")
    status, headers, copied = call(app, VIEW)
    assert status == 200 and copied == body and headers["ETag"] == before["ETag"]
    assert headers["Cache-Status"] == (
        f"cachedproxy; hit; ttl={int(before['Cache-Control'].split('max-age=')[1].split(',')[0])}"
        "; detail=store-unavailable")
    assert headers["Age"] == before["Age"]
    assert call(app, VIEW, headers={"If-None-Match": before["ETag"]})[0] == 304
    status, headers, error = call(app, OTHER)
    assert status == 503 and headers["Cache-Control"] == "no-store"
    assert json.loads(error)["error"]["code"] == "store_unavailable"
    assert len(reader.asked) == 2  # the first failure; the rest waited for the probe
    reader.now = NOW + PROBE_INTERVAL
    assert call(app, OTHER)[0] == 503 and reader.asked[2:] == [["PING"]]  # the probe
    reader.error = None
    reader.now = NOW + 2 * PROBE_INTERVAL
    status, headers, _ = call(app, OTHER)
    assert status == 200 and "detail" not in headers["Cache-Status"]
    assert reader.asked[3] == ["PING"] and len(reader.asked) == 5  # the probe, the read
    reader.now += 0.01  # within the probe interval: Redis is known to answer again
    assert call(app, OTHER)[0] == 200 and len(reader.asked) == 6


def test_a_copy_is_served_no_longer_than_stale_if_error_allows():
    reader = StubReader()
    settings = Settings().replace(cache={"stale_if_error": 100})
    app = create_app(reader, lambda: settings)
    assert call(app, VIEW)[0] == 200
    reader.error = redis.TimeoutError("Timeout reading from socket")
    fresh_until = min(e.fresh_until for e in reader.result.entries)
    reader.now = fresh_until + 99
    status, headers, _ = call(app, VIEW)
    assert status == 200 and "ttl=-99;" in headers["Cache-Status"]
    reader.now = fresh_until + 100.5
    assert call(app, VIEW)[0] == 503


class Connection:
    """A tracking connection holding ``pushes`` (lists of changed keys) to be read."""

    def __init__(self, tracker: Tracker, pushes: list[list[bytes]]) -> None:
        self.tracker, self.pushes, self.commands = tracker, pushes, []

    def can_read(self, timeout: float) -> bool:
        return bool(self.pushes)

    def read_response(self, push_request: bool = False):
        if push_request:
            self.tracker._invalidated([b"invalidate", self.pushes.pop(0)])
        return b"PONG"

    def send_command(self, *args):
        self.commands.append(args)


def test_on_the_event_loop_the_tracker_applies_notices_but_never_waits_on_redis():
    """Not blocking, it answers 0 (copies are not current) where it would connect, ping
    or wait for a thread that is doing so; what has arrived is applied either way."""
    dropped: list[list[str]] = []
    tracker = Tracker(redis.Redis(), "p:entry:", dropped.append)
    assert tracker.current(0.0, blocking=False) == 0  # not connected: no connect here
    conn = Connection(tracker, [[b"p:entry:c42:event:e1"]])
    tracker._conn, tracker.session, tracker._check_at = conn, 1, 10.0
    assert tracker.current(5.0, blocking=False) == 1
    assert dropped == [["c42:event:e1"]] and conn.commands == []
    assert tracker.current(10.0, blocking=False) == 0 and conn.commands == []  # a ping is due
    with tracker._lock:  # a thread is at it
        assert tracker.current(5.0, blocking=False) == 0
    assert tracker.current(10.0) == 1 and conn.commands == [("PING",)]
    assert tracker.current(10.5, blocking=False) == 1
