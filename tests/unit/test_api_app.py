"""The Bottle app in-process: routes, id checks and the error-to-JSON mapping."""

import json

import pytest

from api.app import create_app
from api.reader import Read
from shared.config.settings import Settings
from shared.errors import (
    CachedProxyError,
    FetchTimeout,
    NotFound,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from shared.store.entry import fetched
from tests.unit.apptools import NOW, StubReader, call, on_loop

SETTINGS = Settings()


@pytest.mark.parametrize(
    "path", ["/events-with-subscriptions/e1/", "/events-with-subscriptions/e1"]
)
def test_view_is_served_with_and_without_trailing_slash(path):
    """The view joins event title and subscriber names, as UTF-8 JSON."""
    reader = StubReader()
    status, headers, body = call(create_app(reader, lambda: SETTINGS), path)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"id": "e1", "title": "Zoë's launch",
                                "names": ["Zoë", "Søren", "José"]}
    assert reader.asked == [["c42:event:e1", "c42:subscriptions:e1"]]


@pytest.mark.parametrize("bad", [".", "..", "...", "x" * 129, "%C3%A9", "a%20b", "a:b"])
def test_invalid_ids_are_400_without_reading_the_cache(bad):
    """Ids that are not letters, digits, '_', '-' or '.' (or only dots) get 400 and never reach
    Redis."""
    from urllib.parse import unquote

    reader = StubReader()
    app = create_app(reader, lambda: SETTINGS)
    status, _, body = call(app, "/events-with-subscriptions/" + unquote(bad))
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert reader.asked == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no such event"), 404),
        (UpstreamError("upstream answered 500"), 502),
        (UpstreamTimeout("slow"), 504),
        (FetchTimeout("waited"), 504),
        (StoreUnavailable("redis down"), 503),
        (CachedProxyError(), 500),
        (RuntimeError("bug"), 500),
    ],
)
def test_errors_become_json_with_their_status(error, status):
    """Every failure is a JSON error body with the status of its kind."""
    app = create_app(StubReader(error), lambda: SETTINGS)
    code, headers, body = call(app, "/events-with-subscriptions/e1")
    assert code == status
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["status"] == status


def test_unknown_route_and_method_are_json_errors():
    """404 and 405 from routing are JSON too."""
    app = create_app(StubReader(), lambda: SETTINGS)
    status, headers, body = call(app, "/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    status, headers, body = call(app, "/events-with-subscriptions/e1", method="POST")
    assert status == 405 and json.loads(body)["error"]["status"] == 405
    assert headers["Allow"] == "GET, HEAD"


def test_healthz_answers_without_touching_the_cache():
    """/healthz says the process is alive."""
    reader = StubReader(StoreUnavailable("down"))
    status, _, body = call(create_app(reader, lambda: SETTINGS), "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert reader.asked == []


REPOS = fetched({"count": 2, "pages": [[{"full_name": "o/a"}], [{"full_name": "o/b"}]]}, (),
                NOW - 10, 60)


@pytest.mark.parametrize(("query", "asked"), [
    ("", "github:org_repos:Netflix"),
    ("sort=updated", "github:org_repos:Netflix?sort=updated"),
    ("sort=full_name&direction=asc", "github:org_repos:Netflix?direction=asc&sort=full_name"),
    ("direction=asc&sort=full_name", "github:org_repos:Netflix?direction=asc&sort=full_name"),
])
def test_a_read_through_s_declared_query_is_its_own_cache_entry(query, asked):
    """The same query in any order is the same entry; the items of every page."""
    reader = StubReader(read=Read([REPOS]))
    status, _, body = call(create_app(reader, lambda: SETTINGS), "/github/orgs/Netflix/repos",
                           query=query)
    assert status == 200 and json.loads(body) == [{"full_name": "o/a"}, {"full_name": "o/b"}]
    assert reader.asked == [[asked]]


@pytest.mark.parametrize("query", ["sort=size", "page=2", "per_page=100", "sort", "x=1",
                                   "sort=updated&sort=created", "sort=updated&",
                                   "sort=upd%61ted", "sort=updated+", "direction=ASC"])
def test_any_other_query_on_a_read_through_is_a_404_without_reading(query):
    reader = StubReader(read=Read([REPOS]))
    app = create_app(reader, lambda: SETTINGS)
    status, _, body = call(app, "/github/orgs/Netflix/repos", query=query)
    assert status == 404 and json.loads(body)["error"]["message"].startswith(
        "not on the read-through allowlist")
    assert on_loop(app, "/github/orgs/Netflix/repos", query=query)[0] == 404  # no thread
    assert reader.asked == []
