"""The WSGI app as granian serves it: hits on the event loop, everything else on threads.

granian hands each request to an asyncio event loop (its ASGI interface). The app's
``answer`` is called there first: it answers what needs no I/O (a hit from the process's
copy of its view, api/hits.py; a refusal) in microseconds, or returns None, before
starting a response, for anything that needs Redis or upstream. Those run the WSGI app
itself on a pool of ``threads`` threads: a miss waiting on its fetch holds one of them
and nothing else, so hits never queue behind misses, and the pool's size only bounds
how many requests may wait on Redis or upstream at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from api.responses import encode

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # request bodies over this are refused (413)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# Answers without I/O, as the WSGI app would, or None (before starting a response).
Answer = Callable[[Environ, StartResponse], Iterable[bytes] | None]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class Answering(Protocol):
    """A WSGI app that also answers without I/O where it can: ``Bridge`` asks ``answer``
    on the event loop first."""

    def __call__(self, environ: Environ, start_response: StartResponse
                 ) -> Iterable[bytes]:
        """The WSGI app."""

    def answer(self, environ: Environ, start_response: StartResponse
               ) -> Iterable[bytes] | None:
        """The answer without I/O, or None (before starting a response)."""


RAW_PATH = "RAW_URI"  # environ key: the path as sent, before percent-decoding (as gunicorn)


def beyond_path(environ: Environ) -> str:
    """What came with a request's path, for a read-through to check: "%" when the path
    was sent percent-encoded (never taken: an encoded '/' would pass for a separator once
    decoded), else its query string. Empty: the path alone, as it reads."""
    return "%" if "%" in environ.get(RAW_PATH, "") else environ.get("QUERY_STRING", "")


def environ_of(scope: Scope, body: bytes) -> Environ:
    """PEP 3333's environ for an ASGI HTTP scope. PATH_INFO is the decoded path's bytes
    as latin-1; header names with '_' are dropped (they would pass for '-' ones)."""
    server = scope.get("server") or ("127.0.0.1", 0)
    client = scope.get("client") or ("", 0)
    raw_path = scope.get("raw_path")
    path = unquote_to_bytes(raw_path).decode("latin-1") if raw_path is not None else \
        scope["path"].encode("utf-8").decode("latin-1")
    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        RAW_PATH: raw_path.decode("latin-1") if raw_path is not None else path,
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper()
        if "_" in name:
            continue
        value = raw_value.decode("latin-1")
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def run(app: Answer, environ: Environ) -> Response | None:
    """Call the WSGI app (or an ``Answer``); its status, headers (as ASGI wants them) and
    whole body, or None when it did not answer."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return _no_write

    result = app(environ, start_response)
    if result is None:
        return None
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return int(status[:3]), [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in headers], body


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not supported; return the body")


def _error(status: int, code: str, message: str) -> Response:
    """A JSON error answered by the bridge itself; the connection closes after it."""
    body = encode({"error": {"status": status, "code": code, "message": message}})
    return status, [(b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")], body


class Bridge:
    """An ASGI app: ``answer`` on the loop, and what it leaves, ``app`` (WSGI) on
    ``threads`` threads."""

    def __init__(self, app: WsgiApp, answer: Answer, threads: int) -> None:
        self.app = app
        self.answer = answer
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _body(scope, receive)
        if body is None:
            response = _error(413, "payload_too_large", f"request body over {MAX_BODY} bytes")
        else:
            try:
                response = await self.respond(environ_of(scope, body))
            except Exception:
                log.exception("request failed outside the app's own error handling")
                response = _error(500, "internal", "internal error")
        status, headers, content = response
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def respond(self, environ: Environ) -> Response:
        """The response to one request: answered on the loop, or else on a thread."""
        response = run(self.answer, dict(environ))
        if response is None:
            response = await asyncio.get_running_loop().run_in_executor(
                self.pool, run, self.app, environ)
        assert response is not None  # a WSGI app always answers
        return response


async def _body(scope: Scope, receive: Receive) -> bytes | None:
    """The request's body (None: over MAX_BODY). A GET or HEAD without a length or a
    transfer coding has none to read."""
    if scope["method"] in ("GET", "HEAD") and not any(
            name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]):
        return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
