"""The Bottle app in-process: routes, id checks and the error-to-JSON mapping."""

import io
import json
from collections.abc import Sequence

import pytest

from api.app import create_app
from api.reader import Read
from shared.entry import fetched
from shared.errors import (
    CachedProxyError,
    FetchTimeout,
    NotFound,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)

EVENT = fetched({"id": "e1", "title": "Zoë's launch"}, (), 0.0, 1e12)
SUBS = fetched({"count": 3, "pages": [["Zoë", "Søren"], ["José"]]}, (), 0.0, 1e12)


class StubReader:
    """Returns fixed entries or raises a fixed error; records what was asked."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.asked: list[Sequence[str]] = []

    def read(self, resources: Sequence[str]) -> Read:
        self.asked.append(list(resources))
        if self.error is not None:
            raise self.error
        return Read([EVENT, SUBS])

    def clock(self) -> float:
        return 0.0


def call(app, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    environ = {
        # PEP 3333: PATH_INFO carries the URL's bytes as latin-1.
        "PATH_INFO": path.encode().decode("latin-1"),
        "REQUEST_METHOD": method, "QUERY_STRING": "", "SERVER_NAME": "t", "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    out = {}

    def start_response(status, headers, exc_info=None):
        out["status"], out["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start_response))
    return out["status"], out["headers"], body


@pytest.mark.parametrize(
    "path", ["/events-with-subscriptions/e1/", "/events-with-subscriptions/e1"]
)
def test_view_is_served_with_and_without_trailing_slash(path):
    """The view joins event title and subscriber names, as UTF-8 JSON."""
    reader = StubReader()
    status, headers, body = call(create_app(reader), path)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"id": "e1", "title": "Zoë's launch",
                                "names": ["Zoë", "Søren", "José"]}
    assert reader.asked == [["c42:event:e1", "c42:subscriptions:e1"]]


@pytest.mark.parametrize("bad", ["a.b", "x" * 129, "%C3%A9", "a%20b", "a:b"])
def test_invalid_ids_are_400_without_reading_the_cache(bad):
    """Ids that are not letters, digits, '_' or '-' get 400 and never reach Redis."""
    from urllib.parse import unquote

    reader = StubReader()
    status, _, body = call(create_app(reader), "/events-with-subscriptions/" + unquote(bad))
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
    code, headers, body = call(create_app(StubReader(error)), "/events-with-subscriptions/e1")
    assert code == status
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["status"] == status


def test_unknown_route_and_method_are_json_errors():
    """404 and 405 from routing are JSON too."""
    app = create_app(StubReader())
    status, headers, body = call(app, "/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    status, _, body = call(app, "/events-with-subscriptions/e1", method="POST")
    assert status == 405 and json.loads(body)["error"]["status"] == 405


def test_healthz_answers_without_touching_the_cache():
    """/healthz says the process is alive."""
    reader = StubReader(StoreUnavailable("down"))
    status, _, body = call(create_app(reader), "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert reader.asked == []
