"""HTTP caching semantics of the app, in-process: validators, 304s, freshness headers,
Cache-Status and the OpenAPI description."""

from __future__ import annotations

import json
import logging
import re

import pytest
import schemathesis
from prometheus_client import REGISTRY
from schemathesis.core.result import Ok

from api import openapi
from api.app import create_app
from api.reader import Read
from api.requests_log import RequestLog
from shared.config.settings import Settings
from shared.errors import BudgetSpent, InvalidRequest, NotFound, UpstreamError
from shared.policy.http import http_date
from shared.policy.serving import Served
from shared.store.entry import not_found
from shared.store.flights import Outcome
from tests.unit.apptools import NOW, StubReader, call, entries

URL = "/events-with-subscriptions/e1/"
SETTINGS = Settings()


def get(read: Read | None = None, headers: dict[str, str] | None = None, method: str = "GET",
        error: Exception | None = None):
    return call(create_app(StubReader(error, read), lambda: SETTINGS), URL, method, headers)


def test_view_has_validators_and_freshness_headers():
    """ETag, Last-Modified, Cache-Control with the freshness left, Age and Cache-Status."""
    status, headers, _ = get(Read(entries(120, 200)))
    assert status == 200
    assert headers["ETag"].startswith('"') and len(headers["ETag"]) == 34
    assert headers["Last-Modified"] == http_date(NOW - 252 + 200)
    assert headers["Cache-Control"] == (
        "max-age=120, stale-while-revalidate=60, stale-if-error=86400")
    assert headers["Age"] == str(252 - 120)
    assert headers["Cache-Status"] == "cachedproxy; hit; ttl=120"


def test_etag_depends_only_on_the_parts_data():
    """The same data gives the same ETag (any process, any time); other data another."""
    _, first, _ = get(Read(entries(120, 200)))
    _, later, _ = get(Read(entries(10, 20)))
    assert first["ETag"] == later["ETag"]
    other = entries(120, 200)
    other[0] = type(other[0])(**{**other[0].__dict__, "digest": "changed"})
    _, changed, _ = get(Read(other))
    assert changed["ETag"] != first["ETag"]


@pytest.mark.parametrize("inm", ["{etag}", "W/{etag}", '"nope", {etag}', "*"])
def test_if_none_match_gets_304_with_caching_headers_and_no_body(inm):
    """A matching If-None-Match (weak comparison, lists, *) is a 304 with the same
    caching headers and no body (RFC 9110 15.4.5: no Last-Modified next to an ETag)."""
    _, headers, _ = get(Read(entries(120, 200)))
    status, again, body = get(Read(entries(120, 200)),
                              {"If-None-Match": inm.format(etag=headers["ETag"])})
    assert status == 304 and body == b""
    for name in ("ETag", "Cache-Control", "Age", "Cache-Status"):
        assert again[name] == headers[name]
    assert "Content-Type" not in again


@pytest.mark.parametrize("inm", ['"other"', "garbage", "", 'W/"x", "y"'])
def test_other_or_garbage_if_none_match_gets_the_body(inm):
    """A non-matching or malformed If-None-Match is answered in full."""
    status, _, body = get(Read(entries(120, 200)), {"If-None-Match": inm})
    assert status == 200 and json.loads(body)["id"] == "e1"


def test_if_modified_since_when_no_if_none_match():
    """If-Modified-Since at or after Last-Modified is a 304; before it, or garbage, a 200;
    If-None-Match wins when both are sent."""
    modified = NOW - 252 + 200
    assert get(Read(entries(120, 200)), {"If-Modified-Since": http_date(modified)})[0] == 304
    assert get(Read(entries(120, 200)), {"If-Modified-Since": http_date(modified - 5)})[0] == 200
    assert get(Read(entries(120, 200)), {"If-Modified-Since": "yesterday"})[0] == 200
    assert get(Read(entries(120, 200)), {"If-Modified-Since": http_date(modified),
                                          "If-None-Match": '"other"'})[0] == 200


def test_head_gets_headers_without_body():
    """HEAD is answered like GET, without the body."""
    status, headers, body = get(Read(entries(120, 200)), method="HEAD")
    assert status == 200 and body == b""
    assert headers["Cache-Status"] == "cachedproxy; hit; ttl=120"


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (Read(entries(252, 252), Served.MISS), "cachedproxy; fwd=miss; stored; ttl=252"),
        (Read(entries(252, 252), Served.COLLAPSED),
         "cachedproxy; fwd=miss; stored; collapsed; ttl=252"),
        (Read(entries(-5, 100), Served.STALE),
         "cachedproxy; fwd=stale; ttl=-5; detail=stale-while-revalidate"),
        (Read(entries(-600, -600), Served.STALE_IF_ERROR, upstream_status=503),
         "cachedproxy; fwd=stale; fwd-status=503; ttl=-600; detail=stale-if-error"),
    ],
)
def test_cache_status_says_what_happened(read, expected):
    """RFC 9211 Cache-Status for misses, collapsed misses and the two kinds of stale."""
    status, headers, _ = get(read)
    assert status == 200 and headers["Cache-Status"] == expected
    if read.served in (Served.STALE, Served.STALE_IF_ERROR):
        assert headers["Cache-Control"].startswith("max-age=0,")


def test_a_wait_said_by_a_fetch_reaches_the_client_as_retry_after():
    """A miss refused for its upstream's budget says when to ask again, across the
    flight's outcome to the waiting request and into Retry-After (whole seconds, up)."""
    outcome = Outcome.decode(Outcome.failed(BudgetSpent("spent", retry_after=2.2)).encode())
    status, headers, body = get(error=outcome.error())
    assert status == 503 and headers["Retry-After"] == "3"
    assert json.loads(body)["error"]["code"] == "budget_spent"
    assert "Retry-After" not in get(error=UpstreamError("boom", upstream_status=500))[1]


def test_errors_say_how_they_came_about():
    """A cached 404 is a hit with max-age of the negative TTL; an upstream failure is a
    forwarded miss with the upstream's status, and is not stored by clients."""
    status, headers, body = get(Read([not_found(NOW - 10, 60), *entries(120)],
                                     Served.NEGATIVE))
    assert (status, headers["Cache-Status"]) == (404, "cachedproxy; hit")
    assert headers["Cache-Control"] == "max-age=30"
    assert json.loads(body)["error"]["code"] == "not_found"
    status, headers, _ = get(error=NotFound("gone", upstream_status=404))
    assert headers["Cache-Status"] == "cachedproxy; fwd=miss; fwd-status=404; stored"
    status, headers, _ = get(error=UpstreamError("boom", upstream_status=500))
    assert status == 502
    assert headers["Cache-Status"] == "cachedproxy; fwd=miss; fwd-status=500"
    assert headers["Cache-Control"] == "no-store"


def test_openapi_describes_exactly_the_routes():
    """Every route of the app is in /openapi.json, and every documented path is a route."""
    app = create_app(StubReader(), lambda: SETTINGS)
    routes = {re.sub(r"<(\w+)>", r"{\1}", r.rule) for r in app.routes}
    assert routes == set(openapi.spec()["paths"])
    status, headers, body = call(app, "/openapi.json")
    assert status == 200 and json.loads(body) == openapi.spec()


def test_openapi_describes_the_admin_api_where_it_is_mounted():
    """With the admin API mounted, /openapi.json has each of its operations (the
    routes it has, no more), each behind the admin token; the document stays a valid
    OpenAPI 3 description."""
    from api.admin import admin_app

    admin_api = admin_app(None, lambda _: None, lambda: SETTINGS, lambda: 0.0, lambda _: [],
                          lambda _: {})
    app = create_app(StubReader(), lambda: SETTINGS, admin=admin_api)
    document = json.loads(call(app, "/openapi.json")[2])
    admin = {path: ops for path, ops in document["paths"].items() if path.startswith("/admin/")}
    routes = {(re.sub(r"<(\w+)(:path)?>", r"{\1}", r.rule), r.method.lower())
              for r in admin_api.routes}
    assert {(path, method) for path, ops in admin.items() for method in ops} == routes
    assert ("/admin/upstreams", "get") in routes and len(routes) == 10
    security = {(path, method): op["security"] for path, ops in admin.items()
                for method, op in ops.items()}
    browser = {("/admin/", "get"), ("/admin/status", "get")}  # the session cookie too
    assert {key for key, needs in security.items() if needs == []} == {
        ("/admin/login", "post"), ("/admin/logout", "post")}
    assert all(security[key] == [{"adminToken": []}, {"adminSession": []}] for key in browser)
    assert all(needs == [{"adminToken": []}] for key, needs in security.items()
               if key not in browser and needs)
    parsed = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert parsed and all(isinstance(result, Ok) for result in parsed)  # Err: a wrong one


@pytest.mark.parametrize(
    ("read", "error", "served", "level"),
    [
        (Read(entries(120, 200)), None, "hit", logging.DEBUG),
        (Read(entries(252, 252), Served.MISS), None, "miss", logging.INFO),
        (Read(entries(252, 252), Served.COLLAPSED), None, "collapsed", logging.INFO),
        (Read(entries(-5, 100), Served.STALE), None, "stale", logging.INFO),
        (Read(entries(-600, -600), Served.STALE_IF_ERROR), None, "stale_if_error", logging.INFO),
        (Read([not_found(NOW - 10, 60), *entries(120)], Served.NEGATIVE), None, "negative",
         logging.DEBUG),
        (None, NotFound("gone", upstream_status=404), "miss", logging.INFO),
        (None, UpstreamError("boom", upstream_status=500), "error", logging.INFO),
        (None, InvalidRequest("bad id"), None, logging.INFO),
    ],
)
def test_one_outcome_value_reaches_the_metric_and_the_log(read, error, served, level, caplog):
    """How a request was served is handed, as a value, to the outcome metric and the
    request log (hits and remembered 404s at DEBUG, the rest at INFO; on the event
    loop refusals too are at DEBUG); a bad id has no cache outcome."""
    app = RequestLog(create_app(StubReader(error, read), lambda: SETTINGS))

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("cachedproxy_cache_outcomes_total", {
            "view": "events-with-subscriptions", "outcome": outcome}) or 0.0

    before = {o.value: count(o.value) for o in Served}
    with caplog.at_level(logging.DEBUG, logger="api.requests"):
        call(app, URL)
    changed = {o for o in before if count(o) != before[o]}
    assert changed == ({served} if served else set())
    [record] = [r for r in caplog.records if r.name == "api.requests"]
    assert (record.cache, record.levelno) == (served, level)


def test_a_hit_serves_the_body_of_its_own_etag():
    """Two views of different data in one process never share a body."""
    reader = StubReader(None, Read(entries(120, 200)))
    app = create_app(reader, lambda: SETTINGS)
    _, first, body = call(app, URL)
    other = entries(120, 200)
    other[0] = type(other[0])(**{**other[0].__dict__, "digest": "other",
                                 "data": {"id": "e1", "title": "Changed"}})
    reader.result = Read(other)  # upstream's data changed: another ETag
    _, second, body2 = call(app, URL)
    assert call(app, URL)[2] == body2  # served again from the cache
    assert first["ETag"] != second["ETag"]
    assert json.loads(body)["title"] == "t" and json.loads(body2)["title"] == "Changed"
