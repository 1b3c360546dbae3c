"""api/bridge.py: the WSGI app under granian's ASGI interface; requests the app may
answer without I/O on the event loop, the rest on the thread pool."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from api.bridge import MAX_BODY, Bridge, beyond_path, environ_of


def scope(path: str = "/p", method: str = "GET", query: bytes = b"",
          headers: list[tuple[bytes, bytes]] | None = None, raw_path: bytes | None = None
          ) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "raw_path": raw_path if raw_path is not None else path.encode(),
            "headers": headers or [], "server": ("127.0.0.1", 8080),
            "client": ("10.0.0.7", 5555), "scheme": "http", "http_version": "1.1"}


@pytest.mark.parametrize(("raw_path", "path_info"), [
    (b"/events/a/", "/events/a/"),
    (b"/events/%C3%A9/", "/events/\xc3\xa9/"),  # UTF-8 bytes as latin-1, as PEP 3333 has it
    (b"/events/%2e%2e/", "/events/../"),
    (b"/events/a%2Fb/", "/events/a/b/"),
    (b"/bad/%FF/", "/bad/\xff/"),
])
def test_path_info_is_the_decoded_path_s_bytes_as_latin_1(raw_path, path_info):
    assert environ_of(scope(raw_path=raw_path), b"")["PATH_INFO"] == path_info


@pytest.mark.parametrize(("raw_path", "query", "beyond"), [
    (b"/github/orgs/Netflix", b"", ""),
    (b"/github/orgs/Netflix", b"per_page=1", "per_page=1"),
    (b"/github/orgs/Netflix%2Frepos", b"", "%"),  # an encoded '/' is not a separator
    (b"/github/orgs/%4Eetflix", b"", "%"),
    (b"/github/orgs/Netflix%2Frepos", b"sort=updated", "%"),  # encoded, whatever the query
])
def test_what_comes_beyond_the_path_as_it_reads(raw_path, query, beyond):
    """A read-through takes the path exactly as sent (any percent-encoding makes it a
    404), and only the query parameters it declares."""
    assert beyond_path(environ_of(scope(raw_path=raw_path, query=query), b"")) == beyond


def test_headers_become_the_environ_wsgi_apps_expect():
    environ = environ_of(scope(query=b"a=1&b=%20", headers=[
        (b"host", b"x"), (b"if-none-match", b'"a"'), (b"accept", b"a/b"), (b"accept", b"c/d"),
        (b"content-type", b"application/json"), (b"content-length", b"2"),
        (b"x_forwarded_for", b"1.2.3.4"), (b"x-request-id", b"r\xe9")]), b"{}")
    assert environ["QUERY_STRING"] == "a=1&b=%20"
    assert environ["HTTP_IF_NONE_MATCH"] == '"a"'
    assert environ["HTTP_ACCEPT"] == "a/b,c/d"
    assert environ["CONTENT_TYPE"] == "application/json" and environ["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_X_FORWARDED_FOR" not in environ  # '_' headers would pass for '-' ones
    assert environ["HTTP_X_REQUEST_ID"] == "r\xe9"
    assert environ["REMOTE_ADDR"] == "10.0.0.7" and environ["SERVER_PORT"] == "8080"
    assert environ["wsgi.input"].read() == b"{}"


class App:
    """A WSGI app noting the thread and environ of each call; without I/O (``answer``)
    it answers only /cheap."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, bytes]] = []

    def answer(self, environ, start_response):
        return self._answer(environ, start_response, on_loop=True)

    def __call__(self, environ, start_response):
        return self._answer(environ, start_response, on_loop=False)

    def _answer(self, environ, start_response, on_loop):
        self.calls.append((environ["PATH_INFO"], on_loop, environ["wsgi.input"].read()))
        if on_loop and environ["PATH_INFO"] != "/cheap":
            return None
        body = threading.current_thread().name.encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]


def serve(bridge: Bridge, request: dict[str, Any], body: bytes = b"", chunk: int = 65536
          ) -> tuple[int, dict[bytes, bytes], bytes]:
    messages = [{"type": "http.request", "body": body[i:i + chunk],
                 "more_body": i + chunk < len(body)} for i in range(0, max(len(body), 1), chunk)]
    sent: list[dict[str, Any]] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(bridge(request, receive, send))
    start, content = sent
    return start["status"], dict(start["headers"]), content["body"]


def test_requests_the_app_may_answer_without_io_run_on_the_loop_the_rest_on_threads():
    app = App()
    bridge = Bridge(app, app.answer, threads=2)
    status, headers, body = serve(bridge, scope("/cheap"))
    assert status == 200 and headers[b"content-type"] == b"text/plain"
    assert body == b"MainThread"  # the loop's thread
    assert serve(bridge, scope("/needs-io"))[2].startswith(b"request")  # the app said None
    assert app.calls == [("/cheap", True, b""), ("/needs-io", True, b""),
                         ("/needs-io", False, b"")]


def test_a_request_body_reaches_the_app_and_one_too_large_is_refused():
    app = App()
    bridge = Bridge(app, lambda environ, start_response: None, threads=1)
    headers = [(b"content-length", b"5")]
    assert serve(bridge, scope("/post", "POST", headers=headers), b"hello", chunk=2)[0] == 200
    assert app.calls[-1] == ("/post", False, b"hello")
    status, _, body = serve(bridge, scope("/post", "POST"), b"x" * (MAX_BODY + 1))
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    assert len(app.calls) == 1


def test_an_app_that_fails_outright_gets_a_json_500(caplog):
    def broken(environ, start_response):
        raise RuntimeError("boom")

    status, headers, body = serve(Bridge(broken, lambda e, s: None, threads=1), scope())
    assert status == 500 and headers[b"content-type"].startswith(b"application/json")
    assert json.loads(body)["error"] == {"status": 500, "code": "internal",
                                         "message": "internal error"}
    assert "boom" in caplog.text
