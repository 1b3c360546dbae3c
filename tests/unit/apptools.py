"""Calling the Bottle app in-process through WSGI, with a stub read path."""

from __future__ import annotations

import io
from collections.abc import Sequence

from requests.structures import CaseInsensitiveDict

from api.reader import Read
from shared.policy.timing import ReadThrottle
from shared.store.entry import Entry, fetched

NOW = 1_800_000_000.0
EVENT = fetched({"id": "e1", "title": "Zoë's launch"}, (), NOW - 100, 252)
SUBS = fetched({"count": 3, "pages": [["Zoë", "Søren"], ["José"]]}, (), NOW - 50, 252)


class StubReader:
    """Answers a fixed Read, or raises a fixed error; records what was asked."""

    def __init__(self, error: Exception | None = None, read: Read | None = None) -> None:
        self.error = error
        self.result = read or Read([EVENT, SUBS])
        self.asked: list[Sequence[str]] = []
        self.now = NOW
        self.reads = ReadThrottle()

    def read(self, resources: Sequence[str], not_found: str = "", client: str | None = None
             ) -> Read:
        self.asked.append(list(resources))
        if self.error is not None:
            raise self.error
        return self.result

    def ping(self) -> None:
        self.asked.append(["PING"])
        if self.error is not None:
            raise self.error

    def clock(self) -> float:
        return self.now


def call(app, path: str, method: str = "GET", headers: dict[str, str] | None = None,
         query: str = "") -> tuple[int, CaseInsensitiveDict, bytes]:
    """The app's answer to one request: status, headers, body."""
    answered = _call(app, path, method, headers, query)
    assert answered is not None
    return answered


def on_loop(app, path: str, method: str = "GET", headers: dict[str, str] | None = None,
            query: str = "") -> tuple[int, CaseInsensitiveDict, bytes] | None:
    """The app's answer without I/O (``app.answer``, as the event loop asks it), or None
    when the request needs a thread."""
    return _call(app.answer, path, method, headers, query)


def _call(app, path: str, method: str, headers: dict[str, str] | None, query: str
          ) -> tuple[int, CaseInsensitiveDict, bytes] | None:
    environ = {
        # PEP 3333: PATH_INFO carries the URL's bytes as latin-1.
        "PATH_INFO": path.encode().decode("latin-1"),
        "REQUEST_METHOD": method, "QUERY_STRING": query, "SERVER_NAME": "t", "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    out = {}

    def start_response(status, response_headers, exc_info=None):
        out["status"] = int(status.split()[0])
        out["headers"] = CaseInsensitiveDict(response_headers)  # names are case-insensitive

    result = app(environ, start_response)
    if result is None:
        assert not out, "start_response was called before the app gave up"
        return None
    return out["status"], out["headers"], b"".join(result)


def entries(*fresh_for: float) -> list[Entry]:
    """Entries fresh for these many seconds from NOW (negative: stale)."""
    return [fetched({"id": "e1", "title": "t"} if i == 0 else {"count": 0, "pages": []}, (),
                    NOW - 252 + f, 252) for i, f in enumerate(fresh_for)]
