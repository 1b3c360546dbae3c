"""Hits from a process's copy answered before routing, on the event loop
(``Hits.answer``): the same response the view's route gives, and only when the route
would serve the copy without Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from api.app import create_app
from api.copies import Copies
from api.reader import Read
from api.requests_log import RequestLog
from api.views import Views
from shared.config.settings import Settings
from shared.errors import NotFound
from shared.policy.http import http_date
from shared.policy.serving import Served
from shared.policy.timing import ReadThrottle
from shared.store.entry import not_found
from tests.unit.apptools import NOW, StubReader, call, entries, on_loop

VIEW = "/events-with-subscriptions/e1/"
RULE = "/events-with-subscriptions/<id>/"


class Tracking:
    """A tracking connection that is up (session 1) and has told of no change; it drops
    the copies of the resources a test says changed (``on_change``)."""

    session = 1
    changes = 0

    def __init__(self) -> None:
        self.copies = Copies()
        self.on_change = self.copies.drop

    def current(self, now: float, blocking: bool = True) -> int:
        return self.session

    def changed_since(self, resources: Sequence[str], notice: int) -> bool:
        return False


def tracked(reader, current, tracker: Tracking | None = None, **more):
    """The app with a tracking connection that is up, dropping its copies on changes."""
    tracker = tracker or Tracking()
    return create_app(reader, current, tracker=tracker, copies=tracker.copies, **more)


class Reader(StubReader):
    def __init__(self) -> None:
        super().__init__()
        self.reads = ReadThrottle()

    def read(self, resources: Sequence[str], not_found: str = "", client: str | None = None):
        self.reads.due(resources, self.now, 60.0)  # the read is recorded, as Reader does
        return super().read(resources, not_found)


@pytest.fixture
def served():
    """An app whose view was served once from Redis (so its copy is current), the
    reader, the tracker and the settings in force."""
    reader, tracker, settings = Reader(), Tracking(), Settings()
    app = tracked(reader, lambda: settings, tracker)
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 1
    reader.now = NOW + 3
    return app, reader, tracker


@pytest.mark.parametrize(("method", "headers"), [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"If-None-Match": "*"}),
    ("GET", {"If-None-Match": '"other"'}),
    ("GET", {"If-Modified-Since": http_date(NOW)}),
    ("GET", {"If-Modified-Since": http_date(NOW - 1000)}),
    ("HEAD", {"If-Modified-Since": "not a date"}),
])
def test_a_hit_from_the_copy_is_the_response_the_route_gives(served, method, headers):
    app, reader, _ = served
    routed = call(app, VIEW, method, headers, query="routed=1")  # a query: the route
    early = on_loop(app, VIEW, method, headers)
    assert early is not None
    assert early[0] == routed[0] and early[2] == routed[2]
    assert dict(early[1].lower_items()) == dict(routed[1].lower_items())
    assert len(reader.asked) == 1  # neither read Redis


def test_the_copy_answers_the_path_s_route_in_the_metrics(served):
    app = RequestLog(served[0])
    labels = {"route": RULE, "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("cachedproxy_http_requests_total", labels) or 0
    assert call(app, VIEW)[0] == 200
    assert REGISTRY.get_sample_value("cachedproxy_http_requests_total", labels) == before + 1


def test_the_copy_is_not_used_where_the_route_would_read_redis(served):
    app, reader, tracker = served
    tracker.on_change(["c42:event:e1"])  # its entry changed in Redis
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 2
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 2  # the new copy
    reader.now = NOW + 61  # a read of its resources is due to be recorded
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 3
    tracker.session = 2  # the tracking connection was made again
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 4
    reader.now = NOW + 1000  # past its freshness
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 5
    assert call(app, VIEW, "POST")[0] == 405 and len(reader.asked) == 5


def test_changed_settings_send_the_path_through_its_route_again():
    reader, settings = Reader(), [Settings()]
    app = tracked(reader, lambda: settings[0])
    assert call(app, VIEW)[0] == 200
    assert call(app, VIEW)[0] == 200 and len(reader.asked) == 1
    settings[0] = settings[0].replace(cache={"stale_if_error": 500})
    status, headers, _ = call(app, VIEW)
    assert status == 200 and "stale-if-error=500" in headers["Cache-Control"]
    assert len(reader.asked) == 1  # the route served the copy, under the new settings


def test_on_the_event_loop_only_a_current_copy_answers(served):
    """Anything that would read Redis is left, before answering, to a thread."""
    app, reader, tracker = served
    assert on_loop(app, VIEW)[0] == 200
    tracker.on_change(["c42:event:e1"])
    assert on_loop(app, VIEW) is None
    assert on_loop(app, "/events-with-subscriptions/e2/") is None
    assert len(reader.asked) == 1


def test_a_remembered_404_is_answered_from_the_copy_as_the_route_answers_it():
    """A fresh negative entry makes a copy too: the 404 is answered on the event loop,
    the same response the route gave, until its entry changes."""
    reader, tracker = Reader(), Tracking()
    reader.result = Read([not_found(NOW - 10, 60), *entries(120)], Served.NEGATIVE)
    settings = Settings()
    app = tracked(reader, lambda: settings, tracker)
    routed = call(app, VIEW)
    assert routed[0] == 404 and len(reader.asked) == 1
    reader.now = NOW + 3
    early = on_loop(app, VIEW)
    assert early[0] == 404 and early[2] == routed[2] and len(reader.asked) == 1
    assert dict(early[1].lower_items()) == dict(routed[1].lower_items())
    assert json.loads(early[2])["error"]["code"] == "not_found"
    assert call(app, VIEW, "HEAD")[2] == b""
    tracker.on_change(["c42:event:e1"])  # fetched again, or expired
    assert on_loop(app, VIEW) is None


@pytest.mark.parametrize(("path", "method", "query", "status"), [
    ("/events-with-subscriptions/bad%id/", "GET", "", 400),  # a malformed id
    ("/events-with-subscriptions/" + "x" * 129 + "/", "HEAD", "", 400),
    ("/no/such/route", "GET", "", 404),
    ("/github/orgs/\u0084/", "GET", "", 404),  # not on the read-through allowlist
    ("/github/orgs/Netflix", "GET", "page=2", 404),
    ("/events-with-subscriptions/e1/", "POST", "", 405),
    ("/events-with-subscriptions/bad%id/", "DELETE", "", 405),
    ("/healthz", "GET", "", 200),
    ("/openapi.json", "GET", "", 200),
])
def test_answers_that_need_no_io_are_given_on_the_event_loop(path, method, query, status):
    """Refusals are answered before Bottle, on the loop or not, exactly as Bottle's own
    routing answers them."""
    reader = Reader()
    app = tracked(reader, Settings)
    early = on_loop(app, path, method, query=query)
    by_bottle = call(app, path, method, query=query)
    assert early[0] == status == by_bottle[0] and early[2] == by_bottle[2]
    assert dict(early[1].lower_items()) == dict(by_bottle[1].lower_items())
    assert reader.asked == []


@pytest.mark.parametrize("path", ["/events-with-subscriptions/e1/", "/readyz", "/metrics"])
def test_what_needs_redis_goes_to_a_thread_before_answering(path):
    reader = Reader()
    app = tracked(reader, Settings,
                  readiness=lambda: {"status": "ready", "checks": {}},
                  metrics=lambda: (b"", "text/plain"))
    assert on_loop(app, path) is None
    assert reader.asked == []


def test_a_refusal_needs_no_bottle_request_context():
    """Refused on a thread Bottle never served (the bridge's pool, the event loop)."""
    app = tracked(Reader(), Settings)
    answers: list[tuple] = []
    for path in ("/no/such/route", "/events-with-subscriptions/bad%id/"):
        thread = threading.Thread(target=lambda p=path: answers.append(call(app, p)))
        thread.start()
        thread.join(10)
    assert [a[0] for a in answers] == [404, 400]


def test_a_stale_remembered_404_is_revalidated_by_one_request_and_answered_for_the_rest():
    """Past its freshness (within stale-while-revalidate) a remembered 404's copy sends
    one request a second the route's way, which asks upstream again; the others get on
    the event loop the answer the route gives a stale remembered 404, until the new
    entry's notice drops the copy."""
    reader, tracker, settings = Reader(), Tracking(), Settings()
    reader.result = Read([not_found(NOW - 10, 60), *entries(120)], Served.NEGATIVE)
    app = tracked(reader, lambda: settings, tracker)
    first = call(app, VIEW)
    assert first[0] == 404 and len(reader.asked) == 1
    reader.now = NOW + 51  # stale: the negative entry was fresh until NOW + 50
    # What the route answers now (and it asks upstream again): the view's message.
    reader.error = NotFound(json.loads(first[2])["error"]["message"])
    assert on_loop(app, VIEW) is None  # the one that goes
    routed = call(app, VIEW)
    assert routed[0] == 404 and len(reader.asked) == 2
    early = on_loop(app, VIEW)
    assert early[0] == 404 and early[2] == routed[2] and len(reader.asked) == 2
    assert dict(early[1].lower_items()) == dict(routed[1].lower_items())
    reader.now = NOW + 52.5  # a second later, the next one goes
    assert on_loop(app, VIEW) is None
    assert on_loop(app, VIEW)[0] == 404
    tracker.on_change(["c42:event:e1"])  # the new entry: the copy goes
    assert on_loop(app, VIEW) is None


def test_a_refusal_keeps_no_frames_alive():
    """The error a view's parameters get carries no traceback: one would tie the frames
    of the request to it in a cycle, left for the garbage collector to find (its pauses
    were the 400s' p99)."""
    app = tracked(Reader(), Settings)
    route, raw = app.router.match({"REQUEST_METHOD": "GET",
                                   "PATH_INFO": "/events-with-subscriptions/bad%id/"})
    error = Views.refusal(route.config["view"], raw, "")
    assert error is not None and error.status == 400 and error.__traceback__ is None
